# brcluster: topic records and their cache (br_topic), broker registration,
# the leader and its queue assignment, and queue ownership (br_cluster).
add_library(brcluster STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/br_topic.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_assign.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_cluster.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_cluster_dir.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_cluster_hook.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_cluster_rec.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_reccache.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_leader.c
  ${CMAKE_CURRENT_SOURCE_DIR}/br_owner.c)
target_include_directories(brcluster PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(brcluster PUBLIC mqzk mqcommon m)
mq_strict(brcluster)
