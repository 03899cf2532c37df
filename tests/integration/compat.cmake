# The broker harness smoke test, and compatibility with the official RocketMQ
# clients: tests/compat/ is a Go module (the official Go client, pinned)
# that test_compat_go builds with the Go toolchain and runs against a live
# cluster. It passes with a SKIP line when no Go toolchain is found.
mq_add_integration_test(test_broker_basic)

mq_add_integration_test(test_compat_go)
set_tests_properties(test_compat_go PROPERTIES LABELS "integration;compat" TIMEOUT 1200)
if(TARGET mqadmin)
  add_dependencies(test_compat_go mqadmin)
endif()
