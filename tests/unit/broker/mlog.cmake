# The managed log's codecs (queue record, entry format) and entry search;
# no ZooKeeper, no bookies.
mq_add_unit_test(test_mlog_codec SOURCES test_mlog_codec.c LIBS brmlog)
