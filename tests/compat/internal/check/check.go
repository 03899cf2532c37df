// Package check holds what the compat consumers share: the messages
// ./producer sends, computed back from a received message's "seq" user
// property, and the FIFO order check.
package check

import (
	"fmt"
	"strconv"

	rmq_client "github.com/apache/rocketmq-clients/golang/v5"
)

// Kinds of messages a consumer can be told to expect.
const (
	Normal = "normal" // ./producer -normal: tag, two keys, one property
	Fifo   = "fifo"   // ./producer -fifo: a message group per seq % groups
	None   = "none"   // only the generic checks
)

// ValidKind reports whether kind is one of the above.
func ValidKind(kind string) bool {
	return kind == Normal || kind == Fifo || kind == None
}

func equalKeys(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Message compares mv with what ./producer sent (kind, groups as given to
// it) and with topic; it returns the differences (none: nil), and the
// message's seq and group ("" for normal messages; seq -1 when unknown).
func Message(mv *rmq_client.MessageView, topic, kind string, groups int) (errs []string, seq int, group string) {
	id := mv.GetMessageId()
	seq = -1
	bad := func(format string, args ...interface{}) {
		errs = append(errs, id+": "+fmt.Sprintf(format, args...))
	}
	if id == "" {
		bad("no message id")
	}
	if mv.GetTopic() != topic {
		bad("topic %q, want %q", mv.GetTopic(), topic)
	}
	if mv.GetDeliveryAttempt() < 1 {
		bad("delivery attempt %d", mv.GetDeliveryAttempt())
	}
	if mv.GetReceiptHandle() == "" {
		bad("no receipt handle")
	}
	if mv.GetBornTimestamp() == nil {
		bad("no born timestamp")
	}
	if kind == None {
		return errs, seq, group
	}
	seqStr, ok := mv.GetProperties()["seq"]
	n, err := strconv.Atoi(seqStr)
	if !ok || err != nil {
		bad("no seq property (properties %v)", mv.GetProperties())
		return errs, seq, group
	}
	seq = n
	var body, tag string
	var keys []string
	if kind == Normal {
		body = "ledgermq compat normal " + strconv.Itoa(seq)
		tag = "tag" + strconv.Itoa(seq%4)
		keys = []string{"key-" + strconv.Itoa(seq), "compat"}
	} else {
		body = "ledgermq compat fifo " + strconv.Itoa(seq)
		tag = "fifo"
		keys = []string{"fifo-key-" + strconv.Itoa(seq)}
		group = "group-" + strconv.Itoa(seq%groups)
	}
	if string(mv.GetBody()) != body {
		bad("body %q, want %q", mv.GetBody(), body)
	}
	gotTag := "<none>"
	if mv.GetTag() != nil {
		gotTag = *mv.GetTag()
	}
	if gotTag != tag {
		bad("tag %q, want %q", gotTag, tag)
	}
	if !equalKeys(mv.GetKeys(), keys) {
		bad("keys %v, want %v", mv.GetKeys(), keys)
	}
	if len(mv.GetProperties()) != 1 {
		bad("user properties %v, want only seq", mv.GetProperties())
	}
	gotGroup := ""
	if mv.GetMessageGroup() != nil {
		gotGroup = *mv.GetMessageGroup()
	}
	if gotGroup != group {
		bad("message group %q, want %q", gotGroup, group)
	}
	return errs, seq, group
}

// Order checks that each message group's messages are first delivered in
// the order ./producer sent them: seq g, g+G, g+2G, ... for group-g. Not
// safe for concurrent use.
type Order struct {
	groups int
	next   map[string]int
}

// NewOrder tracks groups message groups.
func NewOrder(groups int) *Order {
	return &Order{groups: groups, next: make(map[string]int)}
}

// First records the first delivery of seq in group; it returns a
// description of the violation, or "".
func (o *Order) First(id, group string, seq int) string {
	want, seen := o.next[group]
	if !seen {
		want = seq % o.groups
	}
	if seq >= want {
		o.next[group] = seq + o.groups
	}
	if seq != want {
		return fmt.Sprintf("%s: group %s seq %d first delivered, want %d", id, group, seq, want)
	}
	return ""
}
