# brconsume: the consume side's parts that do not need the server: consumer
# group records (br_group.h), the delivery codec and tag filters
# (br_deliver.h), the cursor state machine and receipt handles
# (br_cursor.h), and the cursor ledger store (br_cstore.h).
add_library(brconsume STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/br_group.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_deliver.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_cursor.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_cstore.c)
target_include_directories(brconsume PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(brconsume PUBLIC brcluster mqledger mqproto mqmeta mqzk mqcommon
  PkgConfig::CRYPTO)
mq_strict(brconsume)
