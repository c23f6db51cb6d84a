package graph

import (
	"fmt"
	"testing"

	"yakimg/yakiros/capability"
)

// The resolver promises resolution of 10,000 components in well under
// 100 ms; building and analysing the graph is what it costs on top of
// checking requirements.

func benchmarkAnalysis(b *testing.B, nodes []Node) {
	for b.Loop() {
		g := New(nodes, nil)
		g.SCCs()
		g.Layers()
	}
}

func BenchmarkAnalysisChain10k(b *testing.B)  { benchmarkAnalysis(b, chainNodes(10000)) }
func BenchmarkAnalysisFanOut10k(b *testing.B) { benchmarkAnalysis(b, fanOutNodes(10000)) }

// BenchmarkStartableFanOut10k is one resolution pass when the shared
// capability has just come up: 9,999 components become startable.
func BenchmarkStartableFanOut10k(b *testing.B) {
	nodes := fanOutNodes(10000)
	nodes[0].State = "ACTIVE"
	caps := []capability.Capability{{Name: "base", Status: capability.Up, Providers: []string{"root"}}}
	for b.Loop() {
		if got := New(nodes, caps).Startable(); len(got) != 9999 {
			b.Fatalf("Startable() = %d components; want 9999", len(got))
		}
	}
}

// BenchmarkStartableChain10k is one resolution pass halfway up a chain.
func BenchmarkStartableChain10k(b *testing.B) {
	nodes := chainNodes(10000)
	var caps []capability.Capability
	for i := range 5000 {
		nodes[i].State = "ACTIVE"
		caps = append(caps, capability.Capability{Name: fmt.Sprintf("c%d", i), Status: capability.Up, Providers: []string{nodes[i].Name}})
	}
	for b.Loop() {
		if got := New(nodes, caps).Startable(); len(got) != 1 {
			b.Fatalf("Startable() = %v; want one component", got)
		}
	}
}
