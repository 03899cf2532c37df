# The consume side's parts (brconsume). test_deliver is pure; test_group
# starts a real ZooKeeper (scripts/zookeeper.sh), hence the "zk" label.
mq_add_unit_test(test_deliver SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_deliver.c LIBS brconsume)
mq_add_unit_test(test_group SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_group.c LIBS brconsume)
set_tests_properties(test_group PROPERTIES LABELS "unit;zk")
