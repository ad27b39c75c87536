// Package servertls gives sluice's servers — sluice serve and the
// pipeline server of sluice run — TLS from a certificate and its private
// key in PEM files, the --tls-cert and --tls-key flags of both.
//
// The pair is read once, at start, so that a wrong file fails the start
// with the file's name instead of every handshake later; a renewed
// certificate is served after a restart. TLS 1.2 is the oldest version
// spoken.
package servertls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
)

// Load reads the certificate (with any intermediates after it) and the
// key. Both empty: nil and no error, the server speaks plain HTTP. One
// without the other is an error.
func Load(certFile, keyFile string) (*tls.Config, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "":
		return nil, errors.New("--tls-key is given without --tls-cert: give both, the certificate and its private key")
	case keyFile == "":
		return nil, errors.New("--tls-cert is given without --tls-key: give both, the certificate and its private key")
	}
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS: certificate %s with key %s: %w (both must be PEM files, the key the certificate's own)", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}, nil
}

// Listen wraps ln in TLS when cfg is not nil.
func Listen(ln net.Listener, cfg *tls.Config) net.Listener {
	if cfg == nil {
		return ln
	}
	return tls.NewListener(ln, cfg)
}

// Scheme is the scheme of a server's URLs: https with cfg, else http.
func Scheme(cfg *tls.Config) string {
	if cfg == nil {
		return "http"
	}
	return "https"
}
