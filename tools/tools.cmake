# mqc: the RocketMQ v5 client pieces (headers, message ids, route, send,
# telemetry, receive/ack/change) and the verify log, shared by mqbench,
# mqadmin and tests.
add_library(mqc STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/mqc_rmq.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqc_recv.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqc_vlog.c)
target_include_directories(mqc PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(mqc PUBLIC mqrpc mqproto mqcommon PkgConfig::CRYPTO)
mq_strict(mqc)

add_executable(mqbench
  ${CMAKE_CURRENT_SOURCE_DIR}/mqbench_main.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqb_common.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqb_bookie.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqb_disk.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqb_ledger.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqb_produce.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqb_consume.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqb_cverify.c)
target_include_directories(mqbench PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(mqbench PRIVATE mqc mqledger mqmeta mqzk mqnet mqrpc mqproto mqcommon)
mq_strict(mqbench)

# mqadmin: RocketMQ-style admin CLI over ledgermq.admin.v1.Admin.
add_executable(mqadmin
  ${CMAKE_CURRENT_SOURCE_DIR}/mqadmin_main.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqa_common.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqa_topic.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqa_cluster.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqa_group.c)
target_include_directories(mqadmin PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(mqadmin PRIVATE mqc mqrpc mqproto mqcommon)
mq_strict(mqadmin)
