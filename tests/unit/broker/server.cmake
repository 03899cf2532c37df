mq_add_unit_test(test_br_server SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_br_server.c LIBS brserver)
