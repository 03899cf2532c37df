# brmlog: the managed log of a topic queue (br_mlog.h): a list of ledgers in
# ZooKeeper, batched appends with rollover, reads with a hot-tail cache,
# takeover by fencing, retention.
add_library(brmlog STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/br_mlog.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_mlog_list.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_mlog_read.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_mlog_meta.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_mlog_entry.c)
target_include_directories(brmlog PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(brmlog PUBLIC mqledger mqmeta mqzk mqcommon)
mq_strict(brmlog)
