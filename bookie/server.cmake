# bkserver: the bookie server (protocol, ledger table, cookies, registration,
# checkpoint thread, admin HTTP) and the mqbookie binary.
add_library(bkserver STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/bk_conf.c
  ${CMAKE_CURRENT_SOURCE_DIR}/bk_ledger.c
  ${CMAKE_CURRENT_SOURCE_DIR}/bk_cookie.c
  ${CMAKE_CURRENT_SOURCE_DIR}/bk_request.c
  ${CMAKE_CURRENT_SOURCE_DIR}/bk_server.c
  ${CMAKE_CURRENT_SOURCE_DIR}/bk_http.c)
target_include_directories(bkserver PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(bkserver PUBLIC bkstorage mqledger mqzk mqnet mqcommon)
mq_strict(bkserver)

add_executable(mqbookie ${CMAKE_CURRENT_SOURCE_DIR}/bk_main.c)
target_link_libraries(mqbookie PRIVATE bkserver)
mq_strict(mqbookie)
