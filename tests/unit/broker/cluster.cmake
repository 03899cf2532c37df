# Broker cluster modules. test_assign is pure; test_topic starts a real
# ZooKeeper (scripts/zookeeper.sh), hence the "zk" label.
mq_add_unit_test(test_topic SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_topic.c LIBS brcluster mqzk)
mq_add_unit_test(test_assign SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_assign.c LIBS brcluster mqzk)
set_tests_properties(test_topic PROPERTIES LABELS "unit;zk")
