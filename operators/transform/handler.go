package transform

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
)

// Handler runs one invocation: it takes a request's JSON and returns the
// response's. An error is a failed invocation, which the step retries.
// Invoke is called from one goroutine at a time.
type Handler interface {
	Invoke(ctx context.Context, req []byte) ([]byte, error)
}

// HTTP is a handler behind an HTTP endpoint: the request is POSTed as
// application/json, and a 2xx response's body is the answer.
type HTTP struct {
	URL    string
	Client *http.Client // nil: http.DefaultClient
}

// Invoke posts req to the endpoint.
func (h *HTTP) Invoke(ctx context.Context, req []byte) ([]byte, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(req))
	if err != nil {
		return nil, fmt.Errorf("transform: %w", err)
	}
	r.Header.Set("Content-Type", "application/json")
	c := h.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(r)
	if err != nil {
		return nil, fmt.Errorf("transform: post %s: %w", h.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPayload+1))
	if err != nil {
		return nil, fmt.Errorf("transform: read the response of %s: %w", h.URL, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("transform: %s answered %s: %s", h.URL, resp.Status, firstLine(body))
	}
	if len(body) > MaxPayload {
		return nil, fmt.Errorf("transform: the response of %s is over the %d bytes a transform response may hold", h.URL, MaxPayload)
	}
	return body, nil
}

// Command is a handler that runs as a local process: it reads one
// request per line on its standard input and writes one response per
// line on its standard output, in order. The process starts at the first
// invocation and keeps running; one that exits, writes a line that is too
// long, or does not answer before the invocation's deadline is killed,
// and the next invocation starts it again. It ends when its standard
// input closes, which happens when sluice exits however it exits.
type Command struct {
	Args []string
	Dir  string

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan lineOrErr
	stderr *tail
	done   chan struct{}
}

type lineOrErr struct {
	line []byte
	err  error
}

// Invoke writes req as a line and reads the answer's line.
func (c *Command) Invoke(ctx context.Context, req []byte) ([]byte, error) {
	if bytes.IndexByte(req, '\n') >= 0 {
		return nil, errors.New("transform: a request holds a line feed") // json.Marshal never writes one
	}
	if c.cmd == nil {
		if err := c.start(); err != nil {
			return nil, err
		}
	}
	if _, err := c.stdin.Write(append(req, '\n')); err != nil {
		return nil, c.fail(fmt.Errorf("write the request: %w", err))
	}
	select {
	case l, ok := <-c.lines:
		if !ok {
			return nil, c.fail(errors.New("the command exited before it answered"))
		}
		if l.err != nil {
			return nil, c.fail(l.err)
		}
		return l.line, nil
	case <-ctx.Done():
		return nil, c.fail(fmt.Errorf("no answer: %w", context.Cause(ctx)))
	}
}

func (c *Command) start() error {
	if len(c.Args) == 0 {
		return errors.New("transform: no command")
	}
	cmd := exec.Command(c.Args[0], c.Args[1:]...)
	cmd.Dir = c.Dir
	c.stderr = &tail{}
	cmd.Stderr = c.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("transform: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("transform: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("transform: start %s: %w", strings.Join(c.Args, " "), err)
	}
	c.cmd, c.stdin = cmd, stdin
	c.lines = make(chan lineOrErr)
	c.done = make(chan struct{})
	go readLines(stdout, c.lines, c.done)
	return nil
}

// readLines sends each line of r to lines until r ends, a line is too
// long, or done closes.
func readLines(r io.Reader, lines chan<- lineOrErr, done <-chan struct{}) {
	defer close(lines)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxPayload+1)
	for sc.Scan() {
		line := bytes.Clone(sc.Bytes())
		select {
		case lines <- lineOrErr{line: line}:
		case <-done:
			return
		}
	}
	err := sc.Err()
	if errors.Is(err, bufio.ErrTooLong) {
		err = fmt.Errorf("the command wrote a line over the %d bytes a transform response may hold", MaxPayload)
	}
	if err != nil {
		select {
		case lines <- lineOrErr{err: err}:
		case <-done:
		}
	}
}

// fail kills the process after err and returns err with what it wrote
// on its standard error.
func (c *Command) fail(err error) error {
	c.stop()
	msg := fmt.Sprintf("transform: command %s: %v", strings.Join(c.Args, " "), err)
	if s := c.stderr.String(); s != "" {
		msg += "; its standard error ends: " + s
	}
	return errors.New(msg)
}

func (c *Command) stop() {
	if c.cmd == nil {
		return
	}
	close(c.done)
	_ = c.stdin.Close()
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
	c.cmd = nil
}

// Close stops the process.
func (c *Command) Close() error {
	c.stop()
	return nil
}

// tail keeps the last bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailBytes = 2 << 10

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailBytes {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailBytes:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
