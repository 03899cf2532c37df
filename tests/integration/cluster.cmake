# Broker membership, leader and ownership: several br_cluster instances in
# one process against a real ZooKeeper (no bookies needed).
mq_add_integration_test(test_cluster)
target_link_libraries(test_cluster PRIVATE brcluster)
