# The consume side's own quick end-to-end test (receive, ack, long poll,
# redelivery, bad input) against real ZooKeeper, bookies and brokers.
mq_add_integration_test(test_broker_consume_basic)
target_link_libraries(test_broker_consume_basic PRIVATE itrmq)
add_dependencies(test_broker_consume_basic mqbroker mqadmin)
