package testservers

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// PGProxy is a TCP proxy in front of a PostgreSQL database that can cut
// a connection right after the server has answered a COMMIT: the
// transaction is committed, and the client never hears so (it reads the
// COMMIT's CommandComplete, then the connection ends before
// ReadyForQuery). It reads the server's side of the protocol only to
// find those answers and passes every byte through unchanged.
type PGProxy struct {
	// DSN connects to the database through the proxy. It keeps
	// sslmode=disable: the proxy reads the server's messages from the
	// first byte, which an SSL negotiation would not let it.
	DSN string

	armed, dropped atomic.Int64
}

// NewPGProxy starts a proxy in front of db on a loopback port; it cuts
// nothing until DropAfterCommit, and stops when the test ends.
func NewPGProxy(t testing.TB, db *PG) *PGProxy {
	t.Helper()
	u, err := url.Parse(db.DSN)
	if err != nil {
		t.Fatalf("testservers: pg proxy: %v", err)
	}
	if q := u.Query(); q.Get("sslmode") != "disable" {
		t.Fatalf("testservers: pg proxy: %s does not say sslmode=disable", db.DSN)
	}
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testservers: pg proxy: %v", err)
	}
	u.Host = ln.Addr().String()
	p := &PGProxy{DSN: u.String()}

	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	stopped := false
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case on && stopped:
			c.Close()
		case on:
			open[c] = true
		default:
			delete(open, c)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			track(client, true)
			track(server, true)
			wg.Add(2)
			closeBoth := func() {
				client.Close()
				server.Close()
				track(client, false)
				track(server, false)
			}
			go func() {
				defer wg.Done()
				_, _ = io.Copy(server, client)
				closeBoth()
			}()
			go func() {
				defer wg.Done()
				p.relay(client, server)
				closeBoth()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		stopped = true
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

// DropAfterCommit cuts the connections of the next n COMMITs, each right
// after the server's answer to it.
func (p *PGProxy) DropAfterCommit(n int) { p.armed.Add(int64(n)) }

// Dropped is how many connections the proxy cut.
func (p *PGProxy) Dropped() int64 { return p.dropped.Load() }

// relay copies the server's messages to the client, one at a time, and
// returns after the CommandComplete of a COMMIT that is to be cut, or at
// the end of either connection.
func (p *PGProxy) relay(client io.Writer, server io.Reader) {
	r := bufio.NewReader(server)
	var msg []byte
	for {
		msg = msg[:0]
		var err error
		if msg, err = readMessage(r, msg); err != nil {
			return
		}
		if _, err := client.Write(msg); err != nil {
			return
		}
		if msg[0] == 'C' && string(msg[5:]) == "COMMIT\x00" && p.take() {
			p.dropped.Add(1)
			return
		}
	}
}

// take uses up one armed drop, if there is one.
func (p *PGProxy) take() bool {
	for {
		n := p.armed.Load()
		if n <= 0 {
			return false
		}
		if p.armed.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// readMessage appends one backend message (type byte, length, body) to
// buf.
func readMessage(r *bufio.Reader, buf []byte) ([]byte, error) {
	head := make([]byte, 5)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(head[1:])
	if n < 4 || n > 1<<30 {
		return nil, fmt.Errorf("pg proxy: message %q of length %d", head[0], n)
	}
	buf = append(buf, head...)
	start := len(buf)
	buf = append(buf, make([]byte, n-4)...)
	if _, err := io.ReadFull(r, buf[start:]); err != nil {
		return nil, err
	}
	return buf, nil
}
