# The cursor store (broker/br_cstore.h) on real ZooKeeper and bookies.
mq_add_integration_test(test_cstore)
target_link_libraries(test_cstore PRIVATE brconsume)
