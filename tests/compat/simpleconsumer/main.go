// Command simpleconsumer is the consume-side compatibility check of LedgerMQ
// with the official Apache RocketMQ 5 Go client's SimpleConsumer
// (github.com/apache/rocketmq-clients/golang/v5, pinned in go.mod). It
// receives and acknowledges the messages that ./producer sent and checks
// each one against what the producer made of its sequence number (user
// property "seq"): body, tag, keys and, for FIFO messages, the message
// group and the order within the group.
//
// Modes:
//
//   - default: receive until -expect distinct messages are acknowledged. With
//     -noack K the first K distinct messages are left unacknowledged once;
//     each must come back with delivery attempt 2, no earlier than its
//     invisible time, and is then acknowledged.
//   - -never-ack: acknowledge nothing; run until each of -expect messages was
//     delivered -attempts times, then keep receiving for -linger and report
//     the highest attempt seen (a server that dead-letters after -attempts
//     deliveries never shows more).
//
// It prints one line of key=value results (see report) and exits 0 only when
// every check passed. tests/integration/test_compat_go_consume.c builds and
// runs it against a live cluster. By hand:
//
//	go run ./simpleconsumer -endpoint 127.0.0.1:8081 -topic t -group g -expect 1000
//
// The client talks plaintext gRPC (EnableSsl = false), sends no credentials,
// logs errors only, and writes its log file under -log-dir (a new temp dir by
// default).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	rmq_client "github.com/apache/rocketmq-clients/golang/v5"

	"ledgermq/compat/internal/check"
)

type options struct {
	endpoint  string
	topic     string
	group     string
	validate  string
	groups    int
	expect    int
	batch     int
	parallel  int
	invisible time.Duration
	await     time.Duration
	noack     int
	neverAck  bool
	attempts  int
	linger    time.Duration
	timeout   time.Duration
	logDir    string
}

const maxReportedErrors = 10

// state is what every receiving goroutine shares, under mu.
type state struct {
	mu          sync.Mutex
	o           *options
	deliveries  map[string]int       // message id -> deliveries seen
	acked       map[string]bool      // acknowledged (Ack returned nil)
	lastAt      map[string]time.Time // latest delivery
	lateAck     map[string]bool      // acknowledged after its invisible time ran out
	lateDups    int                  // delivered again after a late acknowledgement
	held        map[string]time.Time // left unacknowledged on purpose: when
	redelivered int                  // held messages back with attempt 2
	early       int                  // ... sooner than their invisible time
	order       *check.Order         // FIFO: each group's order
	received    int
	dups        int
	bad         int
	outOfOrder  int
	maxAttempt  int32
	errs        []string
	recvErrors  int
	notFound    int
}

func (s *state) fail(format string, args ...interface{}) {
	s.bad++
	if len(s.errs) < maxReportedErrors {
		s.errs = append(s.errs, fmt.Sprintf(format, args...))
	}
}

func parseFlags() *options {
	o := &options{}
	flag.StringVar(&o.endpoint, "endpoint", "127.0.0.1:8081", "broker gRPC endpoint (host:port)")
	flag.StringVar(&o.topic, "topic", "compat_normal", "topic to consume")
	flag.StringVar(&o.group, "group", "compat_simple", "consumer group")
	flag.StringVar(&o.validate, "validate", "normal", "what the messages are: normal, fifo (as ./producer sends them) or none")
	flag.IntVar(&o.groups, "groups", 16, "message groups of the FIFO messages (-validate fifo)")
	flag.IntVar(&o.expect, "expect", 1000, "distinct messages to receive")
	flag.IntVar(&o.batch, "batch", 16, "messages per Receive")
	flag.IntVar(&o.parallel, "parallel", 4, "concurrent receivers")
	flag.DurationVar(&o.invisible, "invisible", 20*time.Second, "invisible duration of a received message")
	flag.DurationVar(&o.await, "await", 2*time.Second, "long-polling time (WithSimpleAwaitDuration)")
	flag.IntVar(&o.noack, "noack", 0, "leave the first N distinct messages unacknowledged once; they must come back with attempt 2")
	flag.BoolVar(&o.neverAck, "never-ack", false, "acknowledge nothing (dead-letter test)")
	flag.IntVar(&o.attempts, "attempts", 2, "with -never-ack: deliveries to wait for per message")
	flag.DurationVar(&o.linger, "linger", 3*time.Second, "with -never-ack: keep receiving this long after the last expected delivery")
	flag.DurationVar(&o.timeout, "timeout", 3*time.Minute, "give up (exit 3) after this long")
	flag.StringVar(&o.logDir, "log-dir", "", "directory for the client's log file (default: a new temp dir)")
	flag.Parse()
	if o.expect < 1 || o.batch < 1 || o.parallel < 1 || o.groups < 1 || o.noack < 0 || o.attempts < 1 {
		fmt.Fprintln(os.Stderr, "simpleconsumer: -expect, -batch, -parallel, -groups, -attempts must be >= 1, -noack >= 0")
		os.Exit(2)
	}
	if !check.ValidKind(o.validate) {
		fmt.Fprintln(os.Stderr, "simpleconsumer: -validate must be normal, fifo or none")
		os.Exit(2)
	}
	return o
}

// quietLogs sends the client's log to logDir at level error (as ./producer).
func quietLogs(o *options) error {
	dir := o.logDir
	if dir == "" {
		if env := os.Getenv(rmq_client.CLIENT_LOG_ROOT); env != "" {
			dir = env
		} else {
			d, err := os.MkdirTemp("", "rocketmq-go-client-")
			if err != nil {
				return err
			}
			dir = d
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	os.Setenv(rmq_client.CLIENT_LOG_ROOT, dir)
	if os.Getenv(rmq_client.CLIENT_LOG_LEVEL) == "" {
		os.Setenv(rmq_client.CLIENT_LOG_LEVEL, "error")
	}
	os.Setenv(rmq_client.ENABLE_CONSOLE_APPENDER, "false")
	rmq_client.ResetLogger()
	return nil
}

// check compares mv with what ./producer sent; for a FIFO message's first
// delivery, its place in its group. The caller holds s.mu.
func (s *state) check(mv *rmq_client.MessageView) {
	errs, seq, group := check.Message(mv, s.o.topic, s.o.validate, s.o.groups)
	for _, e := range errs {
		s.fail("%s", e)
	}
	if group != "" && seq >= 0 && s.deliveries[mv.GetMessageId()] == 1 {
		if e := s.order.First(mv.GetMessageId(), group, seq); e != "" {
			s.outOfOrder++
			if len(s.errs) < maxReportedErrors {
				s.errs = append(s.errs, e)
			}
		}
	}
}

// handle records one delivery and says whether to acknowledge it.
func (s *state) handle(mv *rmq_client.MessageView) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := mv.GetMessageId()
	s.received++
	s.deliveries[id]++
	if mv.GetDeliveryAttempt() > s.maxAttempt {
		s.maxAttempt = mv.GetDeliveryAttempt()
	}
	s.check(mv)
	if s.o.neverAck {
		return false
	}
	if s.acked[id] {
		// Delivered again after Ack returned nil. The Go client hides an
		// acknowledgement's status: one sent after the invisible time ran
		// out fails, and the message rightly comes back.
		if s.lateAck[id] {
			s.lateDups++
		} else {
			s.dups++
			if len(s.errs) < maxReportedErrors {
				s.errs = append(s.errs, fmt.Sprintf("%s: delivered again (attempt %d) after a timely ack", id, mv.GetDeliveryAttempt()))
			}
		}
		s.lastAt[id] = time.Now()
		return true
	}
	s.lastAt[id] = time.Now()
	if since, ok := s.held[id]; ok {
		if mv.GetDeliveryAttempt() == 2 {
			s.redelivered++
			if time.Since(since) < s.o.invisible-100*time.Millisecond {
				s.early++
			}
		} else {
			s.fail("%s: held message back with attempt %d, want 2", id, mv.GetDeliveryAttempt())
		}
		delete(s.held, id)
		return true
	}
	if s.deliveries[id] == 1 && len(s.held)+s.redelivered < s.o.noack {
		s.held[id] = time.Now()
		return false
	}
	return true
}

func (s *state) done() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.o.neverAck {
		if len(s.deliveries) < s.o.expect {
			return false
		}
		for _, n := range s.deliveries {
			if n < s.o.attempts {
				return false
			}
		}
		return true
	}
	return len(s.acked) >= s.o.expect
}

// deliveryRange is the fewest and most deliveries of one message. The
// caller holds s.mu.
func (s *state) deliveryRange() (int, int) {
	if len(s.deliveries) == 0 {
		return 0, 0
	}
	counts := make([]int, 0, len(s.deliveries))
	for _, n := range s.deliveries {
		counts = append(counts, n)
	}
	sort.Ints(counts)
	return counts[0], counts[len(counts)-1]
}

func (s *state) report() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.errs {
		fmt.Fprintln(os.Stderr, "simpleconsumer: failed:", e)
	}
	if s.bad+s.outOfOrder > len(s.errs) {
		fmt.Fprintf(os.Stderr, "simpleconsumer: ... and %d more\n", s.bad+s.outOfOrder-len(s.errs))
	}
	minDeliveries, maxDeliveries := s.deliveryRange()
	fmt.Printf("received=%d distinct=%d acked=%d dups=%d late_dups=%d bad=%d out_of_order=%d redelivered=%d early=%d "+
		"max_attempt=%d min_deliveries=%d max_deliveries=%d receive_errors=%d not_found=%d\n",
		s.received, len(s.deliveries), len(s.acked), s.dups, s.lateDups, s.bad, s.outOfOrder, s.redelivered, s.early,
		s.maxAttempt, minDeliveries, maxDeliveries, s.recvErrors, s.notFound)
}

func main() {
	o := parseFlags()
	if err := quietLogs(o); err != nil {
		fmt.Fprintln(os.Stderr, "simpleconsumer: log dir:", err)
		os.Exit(2)
	}
	s := &state{
		o:          o,
		deliveries: make(map[string]int),
		acked:      make(map[string]bool),
		lastAt:     make(map[string]time.Time),
		lateAck:    make(map[string]bool),
		held:       make(map[string]time.Time),
		order:      check.NewOrder(o.groups),
	}
	watchdog := time.AfterFunc(o.timeout, func() {
		fmt.Fprintf(os.Stderr, "simpleconsumer: timed out after %s\n", o.timeout)
		s.report()
		os.Exit(3)
	})
	defer watchdog.Stop()

	rmq_client.EnableSsl = false
	c, err := rmq_client.NewSimpleConsumer(&rmq_client.Config{Endpoint: o.endpoint, ConsumerGroup: o.group},
		rmq_client.WithSimpleAwaitDuration(o.await),
		rmq_client.WithSimpleSubscriptionExpressions(map[string]*rmq_client.FilterExpression{
			o.topic: rmq_client.SUB_ALL,
		}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "simpleconsumer: new:", err)
		os.Exit(1)
	}
	started := time.Now()
	if err := c.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "simpleconsumer: start:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "simpleconsumer: started in %s\n", time.Since(started).Round(time.Millisecond))

	ctx := context.Background()
	stop := make(chan struct{})
	var stopOnce sync.Once
	var lingerOnce sync.Once
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < o.parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mvs, err := c.Receive(ctx, int32(o.batch), o.invisible)
				if err != nil {
					s.mu.Lock()
					// MESSAGE_NOT_FOUND after an empty long poll is an
					// error in the Go API; anything else is counted.
					if strings.Contains(err.Error(), "40401") || strings.Contains(err.Error(), "MESSAGE_NOT_FOUND") {
						s.notFound++
					} else {
						s.recvErrors++
						if s.recvErrors <= 3 {
							fmt.Fprintln(os.Stderr, "simpleconsumer: receive:", err)
						}
					}
					s.mu.Unlock()
				}
				for _, mv := range mvs {
					if !s.handle(mv) {
						continue
					}
					if err := c.Ack(ctx, mv); err != nil {
						s.mu.Lock()
						s.fail("%s: ack: %v", mv.GetMessageId(), err)
						s.mu.Unlock()
						continue
					}
					s.mu.Lock()
					id := mv.GetMessageId()
					s.acked[id] = true
					if time.Since(s.lastAt[id]) > o.invisible-200*time.Millisecond {
						s.lateAck[id] = true
					}
					s.mu.Unlock()
				}
				if s.done() {
					if o.neverAck {
						lingerOnce.Do(func() {
							time.AfterFunc(o.linger, func() { stopOnce.Do(func() { close(stop) }) })
						})
					} else {
						stopOnce.Do(func() { close(stop) })
					}
				}
			}
		}()
	}
	wg.Wait()
	fmt.Fprintf(os.Stderr, "simpleconsumer: done in %s\n", time.Since(t0).Round(time.Millisecond))
	if err := c.GracefulStop(); err != nil {
		fmt.Fprintln(os.Stderr, "simpleconsumer: stop:", err)
	}
	s.report()
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.bad == 0 && s.outOfOrder == 0 && s.dups == 0 && s.early == 0 && s.redelivered == o.noack &&
		len(s.held) == 0
	if o.neverAck {
		_, most := s.deliveryRange()
		ok = s.bad == 0 && len(s.deliveries) == o.expect && int(s.maxAttempt) == o.attempts && most == o.attempts
	} else if len(s.deliveries) != o.expect {
		ok = false
	}
	if !ok {
		os.Exit(1)
	}
}
