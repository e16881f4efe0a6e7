package cluster

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// meta is what each coordinator tells the others about itself by gossip.
type meta struct {
	Raft string `json:"raft"`
	API  string `json:"api"`
}

// Member is a coordinator as gossip sees it.
type Member struct {
	ID       string
	Gossip   string // gossip address
	RaftAddr string
	APIAddr  string // base URL of its API
	Alive    bool
	// Since is when the member was last seen changing state.
	Since time.Time
}

// gossip wraps memberlist: coordinators find each other and learn each
// other's raft and API addresses.
type gossip struct {
	ml *memberlist.Memberlist

	mu      sync.Mutex
	members map[string]*Member
	changed chan struct{}
	// self is this node's id; peersFile keeps the others' gossip
	// addresses, so a restarted coordinator finds them again even when its
	// -join names only itself or a node that is gone (Serf's snapshot).
	self      string
	peersFile string
}

type gossipDelegate struct{ meta []byte }

func (d *gossipDelegate) NodeMeta(limit int) []byte {
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}
func (d *gossipDelegate) NotifyMsg([]byte)                           {}
func (d *gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *gossipDelegate) LocalState(join bool) []byte                { return nil }
func (d *gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

type gossipEvents struct{ g *gossip }

func (e gossipEvents) NotifyJoin(n *memberlist.Node)   { e.g.update(n, true) }
func (e gossipEvents) NotifyLeave(n *memberlist.Node)  { e.g.update(n, false) }
func (e gossipEvents) NotifyUpdate(n *memberlist.Node) { e.g.update(n, true) }

func (g *gossip) update(n *memberlist.Node, alive bool) {
	var m meta
	_ = json.Unmarshal(n.Meta, &m)
	g.mu.Lock()
	old := g.members[n.Name]
	cur := &Member{ID: n.Name, Gossip: n.Address(), RaftAddr: m.Raft, APIAddr: m.API, Alive: alive, Since: time.Now()}
	if old != nil && old.Alive == alive {
		cur.Since = old.Since
	}
	g.members[n.Name] = cur
	g.savePeers()
	g.mu.Unlock()
	select {
	case g.changed <- struct{}{}:
	default:
	}
}

func startGossip(id, bind, advertiseHost, raftAddr, apiAddr string, key []byte, server, client *tls.Config, fast bool, logOut io.Writer) (*gossip, error) {
	host, portStr, err := net.SplitHostPort(bind)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", bind, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", bind, err)
	}
	mb, _ := json.Marshal(meta{Raft: raftAddr, API: apiAddr})
	g := &gossip{members: map[string]*Member{}, changed: make(chan struct{}, 1), self: id}
	cfg := memberlist.DefaultLANConfig()
	if fast {
		cfg = memberlist.DefaultLocalConfig()
		cfg.ProbeInterval = 200 * time.Millisecond
		cfg.ProbeTimeout = 100 * time.Millisecond
		cfg.GossipInterval = 50 * time.Millisecond
		cfg.SuspicionMult = 2
	}
	cfg.Name = id
	cfg.BindAddr, cfg.BindPort = host, port
	cfg.AdvertisePort = port
	switch ip := net.ParseIP(host); {
	case ip == nil || !ip.IsUnspecified():
		cfg.AdvertiseAddr = host
	case advertiseHost != "":
		// memberlist wants an IP: resolve a name given in -advertise.
		ips, err := net.LookupIP(advertiseHost)
		if err != nil || len(ips) == 0 {
			return nil, fmt.Errorf("gossip: cannot resolve %q from -advertise: %v", advertiseHost, err)
		}
		cfg.AdvertiseAddr = ips[0].String()
	}
	cfg.SecretKey = key
	cfg.Delegate = &gossipDelegate{meta: mb}
	cfg.Events = gossipEvents{g}
	cfg.Logger = log.New(logOut, "gossip: ", log.LstdFlags)
	if server != nil {
		t, err := newTLSTransport(bind, net.ParseIP(cfg.AdvertiseAddr), server, client)
		if err != nil {
			return nil, err
		}
		cfg.Transport = t
	}
	ml, err := memberlist.Create(cfg)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", bind, err)
	}
	g.ml = ml
	return g, nil
}

// savePeers writes the alive peers' gossip addresses (g.mu held).
func (g *gossip) savePeers() {
	if g.peersFile == "" {
		return
	}
	var addrs []string
	for id, m := range g.members {
		if id != g.self && m.Alive {
			addrs = append(addrs, m.Gossip)
		}
	}
	if len(addrs) == 0 {
		return // keep the last known peers through a lonely moment
	}
	sort.Strings(addrs)
	b, _ := json.Marshal(addrs)
	tmp := g.peersFile + ".tmp"
	if os.WriteFile(tmp, b, 0o640) == nil {
		_ = os.Rename(tmp, g.peersFile)
	}
}

// savedPeers reads the peers a previous run saw.
func savedPeers(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var addrs []string
	_ = json.Unmarshal(b, &addrs)
	return addrs
}

// join contacts the given gossip addresses; one answer is enough.
func (g *gossip) join(addrs []string) error {
	n, err := g.ml.Join(addrs)
	if n == 0 {
		return fmt.Errorf("join %v: %w", addrs, err)
	}
	return nil
}

func (g *gossip) list() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, *m)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

func (g *gossip) get(id string) (Member, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.members[id]
	if m == nil {
		return Member{}, false
	}
	return *m, true
}

func (g *gossip) shutdown() {
	_ = g.ml.Leave(time.Second)
	_ = g.ml.Shutdown()
}
