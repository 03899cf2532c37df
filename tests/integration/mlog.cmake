# The broker's managed log (broker/br_mlog.h) on real ZooKeeper and bookies.
mq_add_integration_test(test_mlog)
target_link_libraries(test_mlog PRIVATE brmlog)
