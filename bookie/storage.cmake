# bkstorage: the bookie's storage engine: journal, entry logs, RocksDB index,
# write cache and checkpoint (bk_journal.h, bk_entrylog.h, bk_index.h,
# bk_storage.h).
set(BK_STORAGE_SRCS
  ${CMAKE_CURRENT_SOURCE_DIR}/bk_journal.c
  ${CMAKE_CURRENT_SOURCE_DIR}/bk_journal_file.c
  ${CMAKE_CURRENT_SOURCE_DIR}/bk_entrylog.c
  ${CMAKE_CURRENT_SOURCE_DIR}/bk_index.c
  ${CMAKE_CURRENT_SOURCE_DIR}/bk_writecache.c
  ${CMAKE_CURRENT_SOURCE_DIR}/bk_storage.c)
add_library(bkstorage STATIC ${BK_STORAGE_SRCS})
target_include_directories(bkstorage PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(bkstorage PUBLIC mqcommon PkgConfig::ROCKSDB)
mq_strict(bkstorage)
