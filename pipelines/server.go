package pipelines

import (
	"net"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/engine/hostcheck"
)

// server checks the server block.
func (c *checker) server(s *Server) {
	if s.Listen == "" || c.has("server.listen") {
		return
	}
	_, port, err := net.SplitHostPort(s.Listen)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		c.atVal("server.listen", "listen %s is not host:port, such as 127.0.0.1:8080", c.show("server.listen", s.Listen))
	}
}

// serverHosts checks server.allowed_hosts.
func (c *checker) serverHosts(s *Server) {
	for i, h := range s.AllowedHosts {
		if _, err := hostcheck.New("", []string{h}); err != nil {
			p := index("server.allowed_hosts", i)
			c.atVal(p, "%s", strings.Replace(err.Error(), strconv.Quote(h), c.show(p, h), 1))
		}
	}
}
