# Consume-side integration tests: real ZooKeeper, 5 bookies and 2 brokers,
# driven through our C client's receive/ack (tools/mqc_recv.h, helpers in
# it_consume) and mqbench consume; test_compat_go_consume runs the official
# Go client's SimpleConsumer and PushConsumer (tests/compat).
add_library(itconsume STATIC ${CMAKE_CURRENT_SOURCE_DIR}/it_consume.c)
target_include_directories(itconsume PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(itconsume PUBLIC ittest mqc)
mq_strict(itconsume)

foreach(t test_consume_longpoll test_consume_badinput test_consume_many test_consume_failover
          test_admin_read
          test_compat_go_consume)
  mq_add_integration_test(${t})
  target_link_libraries(${t} PRIVATE itconsume)
  add_dependencies(${t} mqbroker mqadmin mqbench)
endforeach()
set_tests_properties(test_compat_go_consume PROPERTIES LABELS "integration;compat" TIMEOUT 1200)
