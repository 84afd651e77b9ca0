package kurrent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	api "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeServer speaks the server's v1 Streams protocol over real gRPC, in memory, so the adapter
// and the real client are exercised together where no server can run. It models what the
// adapter relies on, as the server documents and behaves:
//   - each event is its own record, with commit == prepare position, positions growing by
//     the record's size;
//   - an append with an exact expected version below the stream's is a retry when the ids at
//     the expected place match (success without a position), else a wrong expected version; an
//     append with "any" whose first id is already in the stream is a retry or refused;
//   - after each user event a link record ($>) goes to $ce-<category>, as the server's system
//     projections write, and appendSystem adds statistics-like records;
//   - $all reads forwards include the start position, backwards exclude it; a position that is
//     not a record's (or the end) is refused; subscriptions start after their position, filter
//     by event type regex, catch up, then follow live.
//
// It is not the server: the contract suite against a real one runs where EDUTRACK_ESDB_URL is set.
type fakeServer struct {
	api.UnimplementedStreamsServer

	grpc *grpc.Server
	addr string

	mu      sync.Mutex
	records []fakeRecord
	streams map[string][]int // record indexes by stream, in revision order
	next    uint64           // the next record's position
	wake    chan struct{}    // closed and replaced after each write
	drop    chan struct{}    // closed and replaced to drop every subscription
	fail    []codes.Code     // the next calls' failures, in order
	subs    int              // subscriptions currently open
}

type fakeRecord struct {
	id          uuid.UUID
	stream      string
	revision    uint64
	typ         string
	contentType string
	data, meta  []byte
	created     time.Time
	pos         uint64
}

// startFake serves a fresh fake on a free local port until the test ends.
func startFake(t *testing.T) *fakeServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	f := &fakeServer{
		grpc:    grpc.NewServer(),
		addr:    lis.Addr().String(),
		streams: map[string][]int{},
		next:    1024, // the log starts with the server's own epoch records
		wake:    make(chan struct{}),
		drop:    make(chan struct{}),
	}
	api.RegisterStreamsServer(f.grpc, f)
	served := make(chan struct{})
	go func() {
		defer close(served)
		f.grpc.Serve(lis)
	}()
	t.Cleanup(func() {
		f.grpc.Stop()
		<-served
	})
	return f
}

// url is the connection string of the fake. One discovery attempt: a client that cannot reach
// it should say so at once.
func (f *fakeServer) url() string {
	return "kurrentdb://" + f.addr + "?tls=false&maxDiscoverAttempts=1"
}

// failNext makes the next calls (appends or reads) fail with these codes, one each.
func (f *fakeServer) failNext(codes ...codes.Code) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = append(f.fail, codes...)
}

func (f *fakeServer) injected() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.fail) == 0 {
		return nil
	}
	c := f.fail[0]
	f.fail = f.fail[1:]
	return status.Error(c, "failure injected by the test")
}

// dropSubscriptions ends every open subscription with code, as a server does with a consumer
// that is too slow or a node that steps down.
func (f *fakeServer) dropSubscriptions() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.drop)
	f.drop = make(chan struct{})
}

func (f *fakeServer) openSubscriptions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs
}

// appendSystem writes a record of the server's own, such as its periodic statistics.
func (f *fakeServer) appendSystem(stream, typ string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.write(fakeRecord{id: uuid.New(), stream: stream, typ: typ, contentType: "application/json", data: []byte(`{}`)})
	f.broadcast()
}

// write adds a record at the end of the log; the caller holds mu.
func (f *fakeServer) write(r fakeRecord) fakeRecord {
	r.revision = uint64(len(f.streams[r.stream]))
	r.pos = f.next
	r.created = time.Now()
	f.next += 128 + uint64(len(r.data)+len(r.meta))
	f.records = append(f.records, r)
	f.streams[r.stream] = append(f.streams[r.stream], len(f.records)-1)
	return r
}

func (f *fakeServer) broadcast() {
	close(f.wake)
	f.wake = make(chan struct{})
}

func (f *fakeServer) Append(srv grpc.ClientStreamingServer[api.AppendReq, api.AppendResp]) error {
	// Failing before the client has sent everything makes its Send see io.EOF instead of the
	// status; fail at the end, so tests see the status they asked for.
	injected := f.injected()
	head, err := srv.Recv()
	if err != nil {
		return err
	}
	opts := head.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "append without options")
	}
	stream := string(opts.GetStreamIdentifier().GetStreamName())
	var proposed []*api.AppendReq_ProposedMessage
	for {
		m, err := srv.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		proposed = append(proposed, m.GetProposedMessage())
	}
	if injected != nil {
		return injected
	}
	ids := make([]uuid.UUID, len(proposed))
	for i, p := range proposed {
		id, err := protoID(p.GetId())
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		ids[i] = id
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	const noStream, anyState, exists = -1, -2, -4
	expected := int64(anyState)
	switch e := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Revision:
		expected = int64(e.Revision)
	case *api.AppendReq_Options_NoStream:
		expected = noStream
	case *api.AppendReq_Options_StreamExists:
		expected = exists
	}
	idx := f.streams[stream]
	current := int64(len(idx)) - 1
	wrong := func() error {
		w := &api.AppendResp_WrongExpectedVersion{}
		if current < 0 {
			w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
		} else {
			w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(current)}
		}
		switch expected {
		case anyState:
			w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
		case noStream:
			w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
		case exists:
			w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
		default:
			w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: uint64(expected)}
		}
		return srv.SendAndClose(&api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}})
	}
	retried := func(last uint64) error {
		return srv.SendAndClose(&api.AppendResp{Result: &api.AppendResp_Success_{Success: &api.AppendResp_Success{
			CurrentRevisionOption: &api.AppendResp_Success_CurrentRevision{CurrentRevision: last},
			PositionOption:        &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}},
		}}})
	}
	revisionOf := func(id uuid.UUID) (uint64, bool) {
		for _, i := range idx {
			if f.records[i].id == id {
				return f.records[i].revision, true
			}
		}
		return 0, false
	}

	switch {
	case len(ids) == 0:
	case expected == anyState:
		if _, known := revisionOf(ids[0]); known {
			var last uint64
			for _, id := range ids {
				rev, ok := revisionOf(id)
				if !ok {
					return wrong() // the first id is known, a later one is not
				}
				last = rev
			}
			return retried(last)
		}
	case expected == exists:
		if current < 0 {
			return wrong()
		}
	case expected > current:
		return wrong()
	case expected < current:
		for i, id := range ids {
			rev := expected + 1 + int64(i)
			if rev > current || f.records[idx[rev]].id != id {
				return wrong()
			}
		}
		return retried(uint64(expected) + uint64(len(ids)))
	}

	var last fakeRecord
	written := make([]fakeRecord, len(proposed))
	for i, p := range proposed {
		md := p.GetMetadata()
		last = f.write(fakeRecord{id: ids[i], stream: stream, typ: md["type"], contentType: md["content-type"],
			data: p.GetData(), meta: p.GetCustomMetadata()})
		written[i] = last
	}
	for _, r := range written {
		category, _, _ := strings.Cut(r.stream, "-")
		f.write(fakeRecord{id: uuid.New(), stream: "$ce-" + category, typ: "$>", contentType: "text/plain",
			data: []byte(fmt.Sprintf("%d@%s", r.revision, r.stream))})
	}
	f.broadcast()
	resp := &api.AppendResp_Success{PositionOption: &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{CommitPosition: last.pos, PreparePosition: last.pos}}}
	if len(proposed) == 0 {
		resp.CurrentRevisionOption = &api.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
	} else {
		resp.CurrentRevisionOption = &api.AppendResp_Success_CurrentRevision{CurrentRevision: last.revision}
	}
	return srv.SendAndClose(&api.AppendResp{Result: &api.AppendResp_Success_{Success: resp}})
}

func (f *fakeServer) Read(req *api.ReadReq, srv grpc.ServerStreamingServer[api.ReadResp]) error {
	if err := f.injected(); err != nil {
		return err
	}
	o := req.GetOptions()
	switch {
	case o.GetStream() != nil:
		return f.readStream(o, srv)
	case o.GetAll() != nil && o.GetSubscription() != nil:
		return f.subscribeAll(o, srv)
	case o.GetAll() != nil:
		return f.readAll(o, srv)
	}
	return status.Error(codes.InvalidArgument, "read of nothing")
}

func (f *fakeServer) readStream(o *api.ReadReq_Options, srv grpc.ServerStreamingServer[api.ReadResp]) error {
	if o.GetReadDirection() != api.ReadReq_Options_Forwards {
		return status.Error(codes.Unimplemented, "the fake reads streams forwards only")
	}
	so := o.GetStream()
	f.mu.Lock()
	idx := f.streams[string(so.GetStreamIdentifier().GetStreamName())]
	if len(idx) == 0 {
		f.mu.Unlock()
		return srv.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: so.GetStreamIdentifier(),
		}}})
	}
	from := uint64(0)
	switch r := so.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Revision:
		from = r.Revision
	case *api.ReadReq_Options_StreamOptions_End:
		from = uint64(len(idx))
	}
	var out []fakeRecord
	for rev := from; rev < uint64(len(idx)) && uint64(len(out)) < o.GetCount(); rev++ {
		out = append(out, f.records[idx[rev]])
	}
	f.mu.Unlock()
	return sendAll(srv, out)
}

// index returns the index of the record at p, or len(records) for the end of the log.
func (f *fakeServer) index(p *api.ReadReq_Options_Position) (int, error) {
	if p.GetCommitPosition() != p.GetPreparePosition() {
		return 0, status.Error(codes.Unknown, "Trying to read from an invalid position.")
	}
	for i, r := range f.records {
		if r.pos == p.GetCommitPosition() {
			return i, nil
		}
	}
	if p.GetCommitPosition() == f.next {
		return len(f.records), nil
	}
	return 0, status.Error(codes.Unknown, "Trying to read from an invalid position.")
}

func (f *fakeServer) readAll(o *api.ReadReq_Options, srv grpc.ServerStreamingServer[api.ReadResp]) error {
	f.mu.Lock()
	var out []fakeRecord
	backwards := o.GetReadDirection() == api.ReadReq_Options_Backwards
	var from int
	switch a := o.GetAll().GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Start:
		from = 0
	case *api.ReadReq_Options_AllOptions_End:
		from = len(f.records)
	case *api.ReadReq_Options_AllOptions_Position:
		i, err := f.index(a.Position)
		if err != nil {
			f.mu.Unlock()
			return err
		}
		from = i
	}
	if backwards {
		for i := from - 1; i >= 0 && uint64(len(out)) < o.GetCount(); i-- {
			out = append(out, f.records[i])
		}
	} else {
		for i := from; i < len(f.records) && uint64(len(out)) < o.GetCount(); i++ {
			out = append(out, f.records[i])
		}
	}
	f.mu.Unlock()
	return sendAll(srv, out)
}

func (f *fakeServer) subscribeAll(o *api.ReadReq_Options, srv grpc.ServerStreamingServer[api.ReadResp]) error {
	var keep *regexp.Regexp
	if et := o.GetFilter().GetEventType(); et != nil {
		re, err := regexp.Compile(et.GetRegex())
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		keep = re
	}
	f.mu.Lock()
	next := 0
	switch a := o.GetAll().GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_End:
		next = len(f.records)
	case *api.ReadReq_Options_AllOptions_Position:
		i, err := f.index(a.Position)
		if err != nil {
			f.mu.Unlock()
			return err
		}
		next = min(i+1, len(f.records)) // after the position
	}
	drop := f.drop
	f.subs++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.subs--
		f.mu.Unlock()
	}()
	if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{
		SubscriptionId: uuid.NewString(),
	}}}); err != nil {
		return err
	}
	for {
		f.mu.Lock()
		batch := append([]fakeRecord(nil), f.records[next:]...)
		next = len(f.records)
		wake := f.wake
		f.mu.Unlock()
		for _, r := range batch {
			if keep != nil && !keep.MatchString(r.typ) {
				continue
			}
			if err := srv.Send(eventResp(r)); err != nil {
				return err
			}
		}
		select {
		case <-wake:
		case <-drop:
			return status.Error(codes.Aborted, "subscription dropped by the test")
		case <-srv.Context().Done():
			return srv.Context().Err()
		}
	}
}

func sendAll(srv grpc.ServerStreamingServer[api.ReadResp], records []fakeRecord) error {
	for _, r := range records {
		if err := srv.Send(eventResp(r)); err != nil {
			return err
		}
	}
	return nil
}

func eventResp(r fakeRecord) *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               &shared.UUID{Value: &shared.UUID_String_{String_: r.id.String()}},
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.revision,
			PreparePosition:  r.pos,
			CommitPosition:   r.pos,
			Metadata: map[string]string{
				"type":         r.typ,
				"content-type": r.contentType,
				"created":      strconv.FormatInt(r.created.UnixNano()/100, 10), // .NET ticks since the epoch
			},
			CustomMetadata: r.meta,
			Data:           r.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.pos},
	}}}
}

func protoID(id *shared.UUID) (uuid.UUID, error) {
	if s := id.GetStructured(); s != nil {
		return kurrentdb.ParseUUIDFromInt64(s.GetMostSignificantBits(), s.GetLeastSignificantBits())
	}
	return uuid.Parse(id.GetString_())
}

// openFake opens a store on f with options fit for tests: short waits, quiet logs.
func openFake(t *testing.T, f *fakeServer, opts Options) *Store {
	t.Helper()
	if opts.ResubscribeMin == 0 {
		opts.ResubscribeMin, opts.ResubscribeMax = 5*time.Millisecond, 50*time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, f.url(), opts)
	if err != nil {
		t.Fatalf("open store on the fake server: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
