# The cursor state machine, its records and receipt handles; no I/O.
mq_add_unit_test(test_cursor SOURCES test_cursor.c LIBS brconsume)
