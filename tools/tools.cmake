add_executable(mqbench
  ${CMAKE_CURRENT_SOURCE_DIR}/mqbench_main.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqb_common.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqb_bookie.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqb_disk.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mqb_ledger.c)
target_include_directories(mqbench PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(mqbench PRIVATE mqledger mqmeta mqzk mqnet mqcommon)
mq_strict(mqbench)
