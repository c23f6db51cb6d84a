package capability

import (
	"reflect"
	"testing"
	"time"
)

func TestSeveralProviders(t *testing.T) {
	r := NewRegistry()
	if r.Up("net") {
		t.Fatal("Up(net) on an empty registry = true")
	}
	if !r.Provide("net", "dhcp") {
		t.Error("first Provide(net, dhcp) = false; want true (came up)")
	}
	if r.Provide("net", "static") {
		t.Error("second provider Provide(net, static) = true; want false (already up)")
	}
	if r.Provide("net", "dhcp") {
		t.Error("repeated Provide(net, dhcp) = true; want false")
	}
	if r.Withdraw("net", "dhcp") {
		t.Error("Withdraw(net, dhcp) with static still providing = true; want false")
	}
	if !r.Up("net") {
		t.Error("Up(net) with static providing = false")
	}
	if r.Withdraw("net", "dhcp") {
		t.Error("Withdraw by a provider that already withdrew = true")
	}
	if !r.Withdraw("net", "static") {
		t.Error("Withdraw(net, static) by the last provider = false; want true (went down)")
	}
	if r.Up("net") {
		t.Error("Up(net) after every provider withdrew = true")
	}
	if r.Withdraw("never", "x") {
		t.Error("Withdraw of an unknown capability = true")
	}
}

func TestList(t *testing.T) {
	r := NewRegistry()
	r.Provide("b", "p2")
	r.Provide("b", "p1")
	r.Provide("a", "p1")
	r.Withdraw("a", "p1")
	got := r.List()
	for i := range got {
		got[i].Since = time.Time{} // TestSince
	}
	want := []Capability{
		{Name: "a", Status: Down, Providers: []string{}},
		{Name: "b", Status: Up, Providers: []string{"p1", "p2"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List() = %+v; want %+v", got, want)
	}
	got[1].Providers[0] = "changed"
	if r.List()[1].Providers[0] != "p1" {
		t.Error("List() shares its provider slices with the registry")
	}
}

// TestSince: a capability's Since moves when it comes up or goes down, and
// only then.
func TestSince(t *testing.T) {
	r := NewRegistry()
	since := func() time.Time { return r.List()[0].Since }
	before := time.Now()
	r.Provide("net", "a")
	up := since()
	if up.Before(before) || up.After(time.Now()) {
		t.Fatalf("Since %v after coming up; want between %v and now", up, before)
	}
	// Another provider, and one of two leaving, change nothing.
	r.Provide("net", "b")
	r.Withdraw("net", "a")
	r.Provide("net", "a")
	if got := since(); !got.Equal(up) {
		t.Errorf("Since %v after providers came and went while it stayed up; want %v", got, up)
	}
	time.Sleep(time.Millisecond) // a clock that ticks coarsely still moves
	r.Withdraw("net", "a")
	r.Withdraw("net", "b")
	if down := since(); !down.After(up) {
		t.Errorf("Since %v after going down; want later than %v", down, up)
	}
}
