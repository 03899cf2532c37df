/*
 * br_status: how our errors become RocketMQ v2 status codes
 * (apache.rocketmq.v2.Code) in responses. One table, unit-tested over every
 * mq_err_t value. Codes that depend on context (which field of a request was
 * wrong) are chosen by the validators, not here.
 */
#ifndef BR_STATUS_H
#define BR_STATUS_H

#include <stdbool.h>

#include "mq_err.h"
#include "rmq_definition.pb.h"

/* The code a client sees when an operation fails with err. */
apache_rocketmq_v2_Code br_status_code(mq_err_t err);
/* Whether the client should retry (the server's view). */
bool br_status_retriable(apache_rocketmq_v2_Code code);

#endif
