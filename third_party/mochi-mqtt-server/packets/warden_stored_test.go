// SPDX-License-Identifier: MIT

package packets

import (
	"fmt"
	"reflect"
	"runtime"
	"testing"
	"unsafe"
)

// retainedPublish is a retained publish as the server stores it.
func retainedPublish(topic string, payload []byte) Packet {
	return Packet{
		FixedHeader:     FixedHeader{Type: Publish, Retain: true, Qos: 1, Remaining: 120},
		TopicName:       topic,
		Origin:          "client-1",
		Payload:         payload,
		ProtocolVersion: 4,
		Created:         1_800_000_000,
	}
}

// setNonZero gives the settable value v a value other than its zero.
func setNonZero(t *testing.T, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
	default:
		t.Fatalf("no non-zero value for a %s", v.Type())
	}
}

// leaves calls fn with the path and value of every field of v (a struct),
// descending into struct fields.
func leaves(v reflect.Value, path string, fn func(string, reflect.Value)) {
	for i := 0; i < v.NumField(); i++ {
		f, name := v.Field(i), path+"."+v.Type().Field(i).Name
		if f.Kind() == reflect.Struct {
			leaves(f, name, fn)
			continue
		}
		fn(name, f)
	}
}

// TestStoredPacketKeepsEveryField (warden patch 26): whichever field of a
// Packet (its CONNECT parameters and properties included) is set, Get
// returns the very Packet that Add was given; an empty slice stays empty
// rather than nil. A field added to Packet upstream and not known to
// storedPacket fails here.
func TestStoredPacketKeepsEveryField(t *testing.T) {
	base := retainedPublish("a/b", []byte("payload"))
	fields := 0
	leaves(reflect.ValueOf(&base).Elem(), "Packet", func(name string, _ reflect.Value) {
		fields++
		for _, empty := range []bool{false, true} {
			pk := retainedPublish("a/b", []byte("payload"))
			var f reflect.Value
			leaves(reflect.ValueOf(&pk).Elem(), "Packet", func(n string, v reflect.Value) {
				if n == name {
					f = v
				}
			})
			if empty {
				if f.Kind() != reflect.Slice {
					continue
				}
				f.Set(reflect.MakeSlice(f.Type(), 0, 0))
			} else {
				f.Set(reflect.Zero(f.Type()))
				if reflect.DeepEqual(pk, base) || f.Kind() == reflect.Slice || f.Kind() == reflect.Map {
					setNonZero(t, f) // a field the base has zero, or any slice: give it a value
				}
			}
			p := NewPackets()
			p.Add("a/b", pk)
			got, ok := p.Get("a/b")
			if !ok || !reflect.DeepEqual(got, pk) {
				t.Errorf("with %s = %#v, Get returned %+v, want %+v", name, f.Interface(), got, pk)
			}
			if all := p.GetAll(); !reflect.DeepEqual(all["a/b"], pk) {
				t.Errorf("with %s set, GetAll returned %+v", name, all["a/b"])
			}
		}
	})
	if fields < 60 {
		t.Fatalf("only %d fields walked", fields)
	}
}

// TestStoredPacketSize (warden patch 26): a stored retained publish takes
// a map slot of its own and no allocation besides its payload and topic.
// Upstream stored the whole Packet (800 bytes, 896 with its size class)
// out of line: about 1,000 bytes per retained message.
func TestStoredPacketSize(t *testing.T) {
	if size := unsafe.Sizeof(storedPacket{}); size > 128 {
		t.Errorf("storedPacket is %d bytes; over 128 a map allocates each value on its own", size)
	}
	const n = 20000
	topics := make([]string, n)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench/retained/%d", i)
	}
	payload := make([]byte, 100)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p := NewPackets()
	for _, topic := range topics {
		p.Add(topic, retainedPublish(topic, payload))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perMessage := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per stored retained message (topic and payload not counted)", perMessage)
	if perMessage > 300 {
		t.Errorf("%.0f bytes per stored retained message, want at most 300", perMessage)
	}
	runtime.KeepAlive(p)
}
