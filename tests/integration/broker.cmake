# Broker integration tests: real ZooKeeper, bookies and mqbroker processes,
# driven through the RocketMQ v5 protocol (it_rmq) and mqadmin.
add_library(itrmq STATIC ${CMAKE_CURRENT_SOURCE_DIR}/it_rmq.c)
target_include_directories(itrmq PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(itrmq PUBLIC ittest brserver)
mq_strict(itrmq)

foreach(t test_broker_produce test_broker_badinput test_broker_failover test_broker_leader
          test_broker_stall test_broker_http)
  mq_add_integration_test(${t})
  target_link_libraries(${t} PRIVATE itrmq)
  add_dependencies(${t} mqbroker mqadmin)
endforeach()
