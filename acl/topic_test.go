package acl

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateTopicName(t *testing.T) {
	tests := []struct {
		name  string
		topic string
		ok    bool
	}{
		{"a plain topic is valid", "sport/tennis/player1", true},
		{"a single level is valid", "sport", true},
		{"a leading slash gives an empty first level and is valid", "/finance", true},
		{"a lone slash is two empty levels and is valid", "/", true},
		{"empty inner levels are valid", "a//b", true},
		{"a trailing slash is valid", "a/", true},
		{"a $SYS topic is a valid name", "$SYS/broker/clients", true},
		{"spaces are valid", "my topic/x y", true},
		{"multi-byte UTF-8 is valid", "gebäude/温度/🌡", true},
		{"65535 bytes is the longest valid topic", strings.Repeat("a", 65535), true},
		{"an empty topic is invalid", "", false},
		{"65536 bytes is too long", strings.Repeat("a", 65536), false},
		{"U+0000 is invalid", "a/\x00/b", false},
		{"invalid UTF-8 is invalid", "a/\xff", false},
		{"an encoded surrogate is invalid UTF-8", "a/\xed\xa0\x80", false},
		{"a '+' level is invalid in a name", "sport/+/player1", false},
		{"a '#' level is invalid in a name", "sport/#", false},
		{"'+' inside a level is invalid in a name", "sport+", false},
		{"'#' inside a level is invalid in a name", "sport/tennis#", false},
		{"U+0000 early in a long topic is invalid", "ab\x00defghijklmnop", false},
		{"U+0000 late in a long topic is invalid", "abcdefghijklmnop\x00", false},
		{"'+' early in a long topic is invalid", "abcdef+hijklmnop", false},
		{"'#' early in a long topic is invalid", "a#cdefghijklmnop", false},
		{"invalid UTF-8 early in a long topic is invalid", "abc\xffefghijklmnop", false},
		{"a truncated sequence across eight bytes is invalid", "abcdefg\xc3", false},
		{"a sequence across eight bytes is valid", "abcdefg\xc3\xa4hij", true},
		{"bytes next to '+' and '#' are valid", "abc*,\"$%'/)*\"$", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTopicName(tt.topic)
			if tt.ok && err != nil {
				t.Fatalf("ValidateTopicName(%.40q) = %v, want nil", tt.topic, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidTopic) {
				t.Fatalf("ValidateTopicName(%.40q) = %v, want an error wrapping ErrInvalidTopic", tt.topic, err)
			}
		})
	}
}

func TestValidateTopicFilter(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		ok     bool
	}{
		{"a multi-level wildcard as the last level is valid", "sport/tennis/#", true},
		{"a lone '#' is valid", "#", true},
		{"a lone '+' is valid", "+", true},
		{"'+' then '#' is valid", "+/tennis/#", true},
		{"'+' in the middle is valid", "sport/+/player1", true},
		{"'+' levels around empty levels are valid", "+/+", true},
		{"a leading slash then '+' is valid", "/+", true},
		{"a leading slash is valid", "/finance", true},
		{"a plain topic is a valid filter", "sport/tennis/player1", true},
		{"empty levels are valid", "a//b", true},
		{"'#' after an empty level is valid", "a//#", true},
		{"a $SYS filter is valid", "$SYS/#", true},
		{"placeholders are ordinary characters", "devices/{username}/#", true},
		{"65535 bytes is the longest valid filter", strings.Repeat("a/", 32767) + "#", true},
		{"an empty filter is invalid", "", false},
		{"65536 bytes is too long", strings.Repeat("a", 65534) + "/#", false},
		{"U+0000 is invalid", "a/\x00", false},
		{"invalid UTF-8 is invalid", "\xc3\x28/#", false},
		{"'#' glued to a level is invalid", "sport/tennis#", false},
		{"'#' before another level is invalid", "sport/tennis/#/ranking", false},
		{"'#' followed by an empty level is invalid", "#/", false},
		{"'+' glued to a level is invalid", "sport+", false},
		{"'+' glued after a level is invalid", "sport/+tennis", false},
		{"two '+' in one level are invalid", "++", false},
		{"'#' then '+' in one level is invalid", "#+", false},
		{"a shared subscription is valid", "$share/group/sport/tennis/#", true},
		{"a shared subscription to '#' is valid", "$share/g/#", true},
		{"a shared subscription to a one-level filter is valid", "$share/g/a", true},
		{"a shared subscription may target an empty first level", "$share/g//a", true},
		{"a shared subscription without a filter is invalid", "$share/group", false},
		{"a shared subscription with an empty filter is invalid", "$share/group/", false},
		{"a shared subscription with an empty share name is invalid", "$share//a/b", false},
		{"a share name with '+' is invalid", "$share/+/a", false},
		{"a share name with '#' is invalid", "$share/g#/a", false},
		{"a shared subscription to an invalid filter is invalid", "$share/g/a/#/b", false},
		{"a lone $share level is an ordinary filter", "$share", true},
		{"$shared is not a shared subscription", "$shared/+/x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTopicFilter(tt.filter)
			if tt.ok && err != nil {
				t.Fatalf("ValidateTopicFilter(%.40q) = %v, want nil", tt.filter, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidFilter) {
				t.Fatalf("ValidateTopicFilter(%.40q) = %v, want an error wrapping ErrInvalidFilter", tt.filter, err)
			}
		})
	}
}

func TestValidationErrorsSayWhy(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"an empty topic says empty", ValidateTopicName(""), "empty"},
		{"a wildcard in a name says wildcard", ValidateTopicName("a/+"), "wildcard"},
		{"a misplaced '#' says last level", ValidateTopicFilter("a/#/b"), "last level"},
		{"a glued '+' says whole level", ValidateTopicFilter("a+"), "whole level"},
		{"a bad share name says share name", ValidateTopicFilter("$share//a"), "share name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", tt.err, tt.want)
			}
		})
	}
}

func TestValidationLooksAtEveryByte(t *testing.T) {
	// Every byte value at every position of a 17-byte topic, so both the
	// eight-bytes-at-once loop and the tail loop see each one.
	base := []byte("abcdefgh/jklmnopq")
	for pos := range base {
		for c := range 256 {
			topic := []byte(string(base))
			topic[pos] = byte(c)
			s := string(topic)
			if got, want := ValidateTopicName(s) == nil, refValidTopic(s, false); got != want {
				t.Fatalf("ValidateTopicName(%q) valid = %v, want %v", s, got, want)
			}
			if got, want := ValidateTopicFilter(s) == nil, refValidFilter(s); got != want {
				t.Fatalf("ValidateTopicFilter(%q) valid = %v, want %v", s, got, want)
			}
		}
	}
}
