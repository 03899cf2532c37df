// Command pushconsumer is the compatibility check of LedgerMQ with the
// official Apache RocketMQ 5 Go client's PushConsumer
// (github.com/apache/rocketmq-clients/golang/v5, pinned in go.mod): the
// client asks QueryAssignment, long-polls ReceiveMessage on each assigned
// broker with auto-renew, and acknowledges what the listener consumed;
// a FAILURE result is a nack (ChangeInvisibleDuration with the back-off of
// the server's retry policy).
//
// It consumes -topic until -expect distinct messages were consumed
// successfully, checking each against what ./producer sent (body, tag,
// keys, group, FIFO order per group). With -fail N the listener fails the
// first delivery of the first N distinct messages; each must come back with
// delivery attempt 2. It prints one line of key=value results and exits 0
// only when every check passed.
//
//	go run ./pushconsumer -endpoint 127.0.0.1:8081 -topic t -group g -expect 1000
//
// Plaintext gRPC, no credentials, client log at level error under -log-dir.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	rmq_client "github.com/apache/rocketmq-clients/golang/v5"

	"ledgermq/compat/internal/check"
)

type options struct {
	endpoint string
	topic    string
	group    string
	validate string
	groups   int
	expect   int
	fail     int
	threads  int
	timeout  time.Duration
	settle   time.Duration
	logDir   string
}

const maxReportedErrors = 10

type state struct {
	mu         sync.Mutex
	o          *options
	order      *check.Order
	deliveries map[string]int
	consumed   map[string]bool // the listener returned SUCCESS
	failedOnce map[string]bool // the listener returned FAILURE once
	back       int             // failed messages back with attempt 2
	received   int
	dups       int
	bad        int
	outOfOrder int
	maxAttempt int32
	errs       []string
	done       chan struct{}
	doneOnce   sync.Once
}

func (s *state) note(e string) {
	if len(s.errs) < maxReportedErrors {
		s.errs = append(s.errs, e)
	}
}

// consume is the message listener; it runs on the client's consumption
// threads.
func (s *state) consume(mv *rmq_client.MessageView) rmq_client.ConsumerResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := mv.GetMessageId()
	s.received++
	s.deliveries[id]++
	if mv.GetDeliveryAttempt() > s.maxAttempt {
		s.maxAttempt = mv.GetDeliveryAttempt()
	}
	errs, seq, group := check.Message(mv, s.o.topic, s.o.validate, s.o.groups)
	for _, e := range errs {
		s.bad++
		s.note(e)
	}
	if group != "" && seq >= 0 && s.deliveries[id] == 1 {
		if e := s.order.First(id, group, seq); e != "" {
			s.outOfOrder++
			s.note(e)
		}
	}
	if s.consumed[id] {
		s.dups++
		return rmq_client.SUCCESS
	}
	if s.failedOnce[id] && s.deliveries[id] == 2 {
		if mv.GetDeliveryAttempt() == 2 {
			s.back++
		} else {
			s.bad++
			s.note(fmt.Sprintf("%s: failed message back with attempt %d, want 2", id, mv.GetDeliveryAttempt()))
		}
	}
	if s.deliveries[id] == 1 && len(s.failedOnce) < s.o.fail {
		s.failedOnce[id] = true
		return rmq_client.FAILURE
	}
	s.consumed[id] = true
	if len(s.consumed) >= s.o.expect {
		s.doneOnce.Do(func() { close(s.done) })
	}
	return rmq_client.SUCCESS
}

func (s *state) report() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.errs {
		fmt.Fprintln(os.Stderr, "pushconsumer: failed:", e)
	}
	fmt.Printf("push_received=%d distinct=%d consumed=%d dups=%d bad=%d out_of_order=%d failed_back=%d max_attempt=%d\n",
		s.received, len(s.deliveries), len(s.consumed), s.dups, s.bad, s.outOfOrder, s.back, s.maxAttempt)
}

func quietLogs(dir string) error {
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

func main() {
	o := &options{}
	flag.StringVar(&o.endpoint, "endpoint", "127.0.0.1:8081", "broker gRPC endpoint (host:port)")
	flag.StringVar(&o.topic, "topic", "compat_normal", "topic to consume")
	flag.StringVar(&o.group, "group", "compat_push", "consumer group")
	flag.StringVar(&o.validate, "validate", check.Normal, "what the messages are: normal, fifo or none")
	flag.IntVar(&o.groups, "groups", 16, "message groups of the FIFO messages (-validate fifo)")
	flag.IntVar(&o.expect, "expect", 1000, "distinct messages to consume")
	flag.IntVar(&o.fail, "fail", 0, "fail the first delivery of the first N distinct messages")
	flag.IntVar(&o.threads, "threads", 8, "consumption threads")
	flag.DurationVar(&o.timeout, "timeout", 3*time.Minute, "give up (exit 3) after this long")
	flag.DurationVar(&o.settle, "settle", time.Second, "keep consuming this long after the last expected message (duplicates show up)")
	flag.StringVar(&o.logDir, "log-dir", "", "directory for the client's log file (default: a new temp dir)")
	flag.Parse()
	if o.expect < 1 || o.groups < 1 || o.fail < 0 || o.threads < 1 || !check.ValidKind(o.validate) {
		fmt.Fprintln(os.Stderr, "pushconsumer: bad flags")
		os.Exit(2)
	}
	if err := quietLogs(o.logDir); err != nil {
		fmt.Fprintln(os.Stderr, "pushconsumer: log dir:", err)
		os.Exit(2)
	}
	s := &state{
		o:          o,
		order:      check.NewOrder(o.groups),
		deliveries: make(map[string]int),
		consumed:   make(map[string]bool),
		failedOnce: make(map[string]bool),
		done:       make(chan struct{}),
	}
	watchdog := time.AfterFunc(o.timeout, func() {
		fmt.Fprintf(os.Stderr, "pushconsumer: timed out after %s\n", o.timeout)
		s.report()
		os.Exit(3)
	})
	defer watchdog.Stop()

	rmq_client.EnableSsl = false
	pc, err := rmq_client.NewPushConsumer(&rmq_client.Config{Endpoint: o.endpoint, ConsumerGroup: o.group},
		rmq_client.WithPushSubscriptionExpressions(map[string]*rmq_client.FilterExpression{
			o.topic: rmq_client.SUB_ALL,
		}),
		rmq_client.WithPushConsumptionThreadCount(int32(o.threads)),
		rmq_client.WithPushMaxCacheMessageCount(1024),
		rmq_client.WithPushMessageListener(&rmq_client.FuncMessageListener{Consume: s.consume}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushconsumer: new:", err)
		os.Exit(1)
	}
	started := time.Now()
	if err := pc.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "pushconsumer: start:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "pushconsumer: started in %s\n", time.Since(started).Round(time.Millisecond))
	<-s.done
	fmt.Fprintf(os.Stderr, "pushconsumer: %d consumed in %s\n", o.expect, time.Since(started).Round(time.Millisecond))
	time.Sleep(o.settle)
	if err := pc.GracefulStop(); err != nil {
		fmt.Fprintln(os.Stderr, "pushconsumer: stop:", err)
	}
	s.report()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bad != 0 || s.outOfOrder != 0 || s.dups != 0 || s.back != o.fail || len(s.deliveries) != o.expect {
		os.Exit(1)
	}
}
