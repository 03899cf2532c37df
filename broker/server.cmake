# brserver: the broker server (messaging and admin services, the consume
# side, owned queues, admin HTTP, lifecycle) and the mqbroker binary.
add_library(brserver STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/br_conf.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_pb.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_status.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_record.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_queue.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_msg.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_send.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_admin.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_recv.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_recv_cursor.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_recv_ack.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_recv_dlq.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_recv_query.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_http.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_server.c)
target_include_directories(brserver PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(brserver PUBLIC brconsume brcluster brmlog mqrpc mqproto mqledger mqmeta mqzk mqnet
  mqcommon)
mq_strict(brserver)

add_executable(mqbroker ${CMAKE_CURRENT_SOURCE_DIR}/br_main.c)
target_link_libraries(mqbroker PRIVATE brserver)
mq_strict(mqbroker)
