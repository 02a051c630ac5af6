// SPDX-License-Identifier: MIT

package packets

import "testing"

// TestExpiryOrderStaysSmall (warden patch 24): one topic retained again
// and again, each time with a deadline, leaves the replaced messages'
// entries in the expiry order until their time; they are dropped once they
// outnumber the stored messages, so the order stays within a small
// multiple of the store. So do entries of deleted messages.
func TestExpiryOrderStaysSmall(t *testing.T) {
	p := NewPackets()
	p.DeleteExpired(0, 86400) // every message now has a deadline
	for i := 0; i < 100000; i++ {
		p.Add("hot", Packet{ProtocolVersion: 4, Created: int64(1000 + i)})
	}
	if n := len(p.expiry); n > 2*1+64+1 {
		t.Errorf("the expiry order holds %d entries for 1 retained message", n)
	}
	for i := 0; i < 1000; i++ {
		p.Add(string(rune('a'+i%26))+string(rune(i)), Packet{Created: 1000})
	}
	for id := range p.internal {
		p.Delete(id)
	}
	if n := len(p.expiry); n > 64+1 {
		t.Errorf("the expiry order holds %d entries for an empty store", n)
	}
	if ids := p.DeleteExpired(1_000_000, 86400); len(ids) != 0 || p.Len() != 0 {
		t.Errorf("expired %v from an empty store", ids)
	}
}
