// Command producer is the compatibility check of LedgerMQ with the official
// Apache RocketMQ 5 Go client (github.com/apache/rocketmq-clients/golang/v5,
// pinned in go.mod). It starts a producer against one broker endpoint, sends
// normal messages (tag, keys, a user property) and FIFO messages (message
// groups), and requires a receipt with a message id and no error for every
// one. It prints one summary line, "normal_ok=N fifo_ok=N", and exits 0 only
// when every send succeeded.
//
// tests/integration/test_compat_go.c builds and runs it against a live
// cluster. By hand:
//
//	go run ./producer -endpoint 127.0.0.1:8081 -topic t -fifo-topic tf
//
// The client talks plaintext gRPC (EnableSsl = false), sends no credentials,
// logs errors only, and writes its log file under -log-dir (a new temp dir by
// default) rather than $HOME/logs/rocketmq.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	rmq_client "github.com/apache/rocketmq-clients/golang/v5"
)

type options struct {
	endpoint  string
	topic     string
	fifoTopic string
	normal    int
	fifo      int
	groups    int
	parallel  int
	timeout   time.Duration
	logDir    string
}

// result counts the sends of one kind that got a receipt with a message id,
// and keeps the first few failures for the report.
type result struct {
	mu     sync.Mutex
	ok     int
	failed int
	errs   []string
	ids    map[string]bool
	dups   int
}

const maxReportedErrors = 10

func (r *result) record(what string, receipts []*rmq_client.SendReceipt, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	why := ""
	switch {
	case err != nil:
		why = err.Error()
	case len(receipts) != 1:
		why = fmt.Sprintf("%d receipts, want 1", len(receipts))
	case receipts[0] == nil || receipts[0].MessageID == "":
		why = "receipt without a message id"
	}
	if why == "" {
		id := receipts[0].MessageID
		if r.ids[id] {
			// The client makes a fresh id per message: the broker must echo it.
			r.dups++
			why = "duplicate message id " + id
		} else {
			r.ids[id] = true
			r.ok++
			return
		}
	}
	r.failed++
	if len(r.errs) < maxReportedErrors {
		r.errs = append(r.errs, what+": "+why)
	}
}

func newResult() *result {
	return &result{ids: make(map[string]bool)}
}

func parseFlags() *options {
	o := &options{}
	flag.StringVar(&o.endpoint, "endpoint", "127.0.0.1:8081", "broker gRPC endpoint (host:port)")
	flag.StringVar(&o.topic, "topic", "compat_normal", "topic for normal messages")
	flag.StringVar(&o.fifoTopic, "fifo-topic", "compat_fifo", "topic for FIFO messages (must accept FIFO)")
	flag.IntVar(&o.normal, "normal", 1000, "normal messages to send")
	flag.IntVar(&o.fifo, "fifo", 1000, "FIFO messages to send")
	flag.IntVar(&o.groups, "groups", 16, "message groups the FIFO messages are spread over")
	flag.IntVar(&o.parallel, "parallel", 8, "concurrent senders")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up (exit 3) after this long")
	flag.StringVar(&o.logDir, "log-dir", "", "directory for the client's log file (default: a new temp dir)")
	flag.Parse()
	if o.normal < 0 || o.fifo < 0 || o.groups < 1 || o.parallel < 1 {
		fmt.Fprintln(os.Stderr, "producer: -normal/-fifo must be >= 0, -groups and -parallel >= 1")
		os.Exit(2)
	}
	return o
}

// quietLogs sends the client's log to logDir at level error. The client
// reads these variables when its logger is (re)built, so ResetLogger must
// follow; nothing has been logged before main runs.
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

func sendNormal(ctx context.Context, p rmq_client.Producer, o *options, r *result) {
	var wg sync.WaitGroup
	for w := 0; w < o.parallel; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < o.normal; i += o.parallel {
				msg := &rmq_client.Message{
					Topic: o.topic,
					Body:  []byte("ledgermq compat normal " + strconv.Itoa(i)),
				}
				msg.SetTag("tag" + strconv.Itoa(i%4))
				msg.SetKeys("key-"+strconv.Itoa(i), "compat")
				msg.AddProperty("seq", strconv.Itoa(i))
				receipts, err := p.Send(ctx, msg)
				r.record("normal "+strconv.Itoa(i), receipts, err)
			}
		}(w)
	}
	wg.Wait()
}

// sendFifo sends message i in group i % groups. Each group is sent by one
// goroutine, one message at a time, as a FIFO producer must to keep the
// group's order.
func sendFifo(ctx context.Context, p rmq_client.Producer, o *options, r *result) {
	var wg sync.WaitGroup
	workers := o.parallel
	if workers > o.groups {
		workers = o.groups
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for g := w; g < o.groups; g += workers {
				group := "group-" + strconv.Itoa(g)
				for i := g; i < o.fifo; i += o.groups {
					msg := &rmq_client.Message{
						Topic: o.fifoTopic,
						Body:  []byte("ledgermq compat fifo " + strconv.Itoa(i)),
					}
					msg.SetTag("fifo")
					msg.SetKeys("fifo-key-" + strconv.Itoa(i))
					msg.AddProperty("seq", strconv.Itoa(i))
					msg.SetMessageGroup(group)
					receipts, err := p.Send(ctx, msg)
					r.record("fifo "+group+" "+strconv.Itoa(i), receipts, err)
				}
			}
		}(w)
	}
	wg.Wait()
}

func report(kind string, r *result) {
	for _, e := range r.errs {
		fmt.Fprintln(os.Stderr, "producer: failed:", e)
	}
	if r.failed > len(r.errs) {
		fmt.Fprintf(os.Stderr, "producer: ... and %d more %s failures\n", r.failed-len(r.errs), kind)
	}
}

func main() {
	o := parseFlags()
	if err := quietLogs(o); err != nil {
		fmt.Fprintln(os.Stderr, "producer: log dir:", err)
		os.Exit(2)
	}
	// A broker that never answers the Telemetry settings makes Start() wait
	// forever (client behaviour): fail instead of hanging the test.
	watchdog := time.AfterFunc(o.timeout, func() {
		fmt.Fprintf(os.Stderr, "producer: timed out after %s\n", o.timeout)
		os.Exit(3)
	})
	defer watchdog.Stop()

	// Plaintext: the Go client defaults to TLS. Set before Start().
	rmq_client.EnableSsl = false
	topics := []string{o.topic}
	if o.fifoTopic != o.topic {
		topics = append(topics, o.fifoTopic)
	}
	// WithTopics is required: without it Start() never returns (client bug,
	// rocketmq-clients #1165/#1316). No credentials: no ACL.
	p, err := rmq_client.NewProducer(&rmq_client.Config{Endpoint: o.endpoint},
		rmq_client.WithTopics(topics...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer: new:", err)
		os.Exit(1)
	}
	started := time.Now()
	if err := p.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "producer: start:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "producer: started in %s\n", time.Since(started).Round(time.Millisecond))

	ctx := context.Background()
	normal, fifo := newResult(), newResult()
	t0 := time.Now()
	sendNormal(ctx, p, o, normal)
	t1 := time.Now()
	sendFifo(ctx, p, o, fifo)
	t2 := time.Now()
	fmt.Fprintf(os.Stderr, "producer: normal %d in %s, fifo %d in %s\n", o.normal,
		t1.Sub(t0).Round(time.Millisecond), o.fifo, t2.Sub(t1).Round(time.Millisecond))

	if err := p.GracefulStop(); err != nil {
		fmt.Fprintln(os.Stderr, "producer: stop:", err)
	}
	report("normal", normal)
	report("fifo", fifo)
	fmt.Printf("normal_ok=%d fifo_ok=%d\n", normal.ok, fifo.ok)
	if normal.ok != o.normal || fifo.ok != o.fifo {
		os.Exit(1)
	}
}
