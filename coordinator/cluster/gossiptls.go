package cluster

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// tlsTransport carries memberlist over mutual TLS instead of UDP and plain
// TCP: every peer proves with a certificate from the cluster's CA that it
// belongs. Gossip "packets" become short TLS connections (one frame each);
// streams are TLS connections kept open. Used when -tls-cert is set.
type tlsTransport struct {
	ln        net.Listener
	client    *tls.Config
	advertise net.IP
	port      int
	packets   chan *memberlist.Packet
	streams   chan net.Conn
	closed    atomic.Bool
	done      chan struct{}
}

const (
	framePacket    = 'p'
	frameStream    = 's'
	maxPacketBytes = 1 << 20
)

func newTLSTransport(bind string, advertise net.IP, server, client *tls.Config) (*tlsTransport, error) {
	ln, err := tls.Listen("tcp", bind, server)
	if err != nil {
		return nil, fmt.Errorf("gossip TLS listener on %s: %w", bind, err)
	}
	_, portStr, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(portStr)
	t := &tlsTransport{ln: ln, client: client, advertise: advertise, port: port,
		packets: make(chan *memberlist.Packet, 256), streams: make(chan net.Conn, 16), done: make(chan struct{})}
	go t.accept()
	return t, nil
}

func (t *tlsTransport) accept() {
	for {
		conn, err := t.ln.Accept()
		if err != nil {
			if t.closed.Load() {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go t.handle(conn)
	}
}

func (t *tlsTransport) handle(conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	kind, err := br.ReadByte()
	if err != nil {
		conn.Close()
		return
	}
	switch kind {
	case framePacket:
		defer conn.Close()
		var n uint32
		if binary.Read(br, binary.BigEndian, &n) != nil || n > maxPacketBytes {
			return
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			return
		}
		select {
		case t.packets <- &memberlist.Packet{Buf: buf, From: conn.RemoteAddr(), Timestamp: time.Now()}:
		case <-t.done:
		}
	case frameStream:
		_ = conn.SetReadDeadline(time.Time{})
		select {
		case t.streams <- &bufferedConn{Conn: conn, r: br}:
		case <-t.done:
			conn.Close()
		}
	default:
		conn.Close()
	}
}

// bufferedConn keeps bytes the frame reader already buffered.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (t *tlsTransport) dial(addr string, timeout time.Duration, kind byte) (net.Conn, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr, t.client)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write([]byte{kind}); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *tlsTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		if p := net.ParseIP(ip); p != nil {
			return p, port, nil
		}
		return nil, 0, fmt.Errorf("gossip advertise address %q is not an IP", ip)
	}
	if t.advertise == nil {
		return nil, 0, errors.New("gossip over TLS needs an advertise address")
	}
	return t.advertise, t.port, nil
}

// WriteTo implements memberlist.Transport: one frame on a fresh connection.
func (t *tlsTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	conn, err := t.dial(addr, 2*time.Second, framePacket)
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close()
	hdr := make([]byte, 4)
	binary.BigEndian.PutUint32(hdr, uint32(len(b)))
	if _, err := conn.Write(append(hdr, b...)); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

// PacketCh implements memberlist.Transport.
func (t *tlsTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout implements memberlist.Transport.
func (t *tlsTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.dial(addr, timeout, frameStream)
}

// StreamCh implements memberlist.Transport.
func (t *tlsTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown implements memberlist.Transport.
func (t *tlsTransport) Shutdown() error {
	if t.closed.Swap(true) {
		return nil
	}
	close(t.done)
	return t.ln.Close()
}
