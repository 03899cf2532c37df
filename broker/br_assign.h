/*
 * br_assign: the leader's queue assignment, as a pure function.
 *
 * Given the live brokers (with their reported msgs/s) and every queue of
 * every topic (with the live broker that has it now, if any), it chooses a
 * broker for each queue:
 *
 *   1. Targets. A broker is overloaded when its msgs/s exceed both
 *      overload_factor times the average over all live brokers and
 *      overload_floor. Its target is the even share scaled down by how far
 *      it is above the average: floor(share * average / load), at least 1
 *      (moving a broker's last queue moves its load, it does not shed it),
 *      where share = floor(queues / brokers). The target does not depend on
 *      how many queues it holds now, so a rebalance on the same reports
 *      (the next one comes before the broker reports its new load) moves
 *      nothing more. The other brokers share the
 *      remaining queues evenly (counts differ by at most one); the extra
 *      ones go to the brokers that hold the most now (fewest moves), then
 *      the least loaded, then by id. Without overload every target is the
 *      even share or one more, so counts differ by at most one.
 *   2. Keep. In (topic, queue) order, a queue stays with its current broker
 *      while that broker is under its target (sticky).
 *   3. Fill. Every other queue (its broker died, was over target, or it is
 *      new), in (topic, queue) order, goes to the broker furthest below its
 *      target, then the least loaded, then by id.
 *
 * So every queue is assigned when a broker lives, a queue only moves when
 * its broker is dead or over target, and moves come from the brokers with
 * the most. The result depends only on the sets given (not their order).
 *
 * Grace. A broker that shed load reports less afterwards, so the next
 * rebalance would find nobody overloaded and even the counts out again,
 * moving the queues straight back (and again after the next report). The
 * caller remembers the targets of brokers found overloaded (target and
 * overloaded below) and passes them back as hold for a grace period (Pulsar's
 * loadBalancerSheddingGracePeriodMinutes): a held broker counts as
 * overloaded with at most that target, whatever its load says now. Holds
 * are ignored when they would leave no broker to take the rest.
 *
 * Weighting: only msgs_in counts (the figure every broker reports and that
 * costs the most: appends go to bookies). Per-queue rates are not known, so
 * shedding assumes a broker's queues are equally busy and moves whichever
 * come last in (topic, queue) order; the floor and the factor give some
 * hysteresis. When a few queues carry the load, the broker that receives
 * them may become the overloaded one next (no per-queue rates, no grace
 * period yet: Pulsar's loadBalancerSheddingGracePeriodMinutes).
 *
 * Pure; any thread.
 */
#ifndef BR_ASSIGN_H
#define BR_ASSIGN_H

#include <stdbool.h>
#include <stddef.h>

typedef struct br_assign_broker {
    const char *id;  /* distinct */
    double load;     /* msgs/s in */
    size_t hold;     /* > 0: shed lately, its target stays at most this (grace) */
    size_t target;   /* out: how many queues it is to have */
    bool overloaded; /* out: overloaded by its load now (its target was cut) */
} br_assign_broker_t;

typedef struct br_assign_queue {
    const char *topic;
    int queue;
    int current;  /* index of the live broker that has it now, -1 none */
    int assignee; /* out: index into the brokers, -1 when there are none */
} br_assign_queue_t;

typedef struct br_assign_params {
    double overload_factor; /* >= 1 (smaller values count as 1); default 1.5 */
    double overload_floor;  /* msgs/s below which nobody is overloaded; 1000 */
} br_assign_params_t;

void br_assign_params_default(br_assign_params_t *p);
/* Fills queues[i].assignee; returns how many queues that had a current
 * broker move to another. (topic, queue) pairs must be distinct. */
size_t br_assign_compute(br_assign_broker_t *brokers, size_t nbrokers, br_assign_queue_t *queues,
                         size_t nqueues, const br_assign_params_t *p);

#endif
