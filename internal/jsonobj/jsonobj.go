// Package jsonobj walks the members of a JSON object without decoding it: the splices that seal
// personal fields (personaldata) and drop withheld ones (eventbus) keep every other byte as it
// was, and cost a scan where decoding into a map and encoding it again cost far more.
package jsonobj

import (
	"bytes"
	"encoding/json"
	"iter"
	"slices"
)

// Member is one member of an object: its key as written (quotes and escapes included), and
// where its value lies in the object's bytes, data[Start:End].
type Member struct {
	Key        []byte
	Start, End int
}

// Members returns the members of data, in order, when data is a valid JSON object (with white
// space around it or not); ok is false otherwise. A key that occurs more than once is yielded
// each time.
func Members(data []byte) (members iter.Seq[Member], ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' || !json.Valid(data) {
		return nil, false
	}
	return func(yield func(Member) bool) {
		i := skipSpace(data, i+1)
		for data[i] != '}' {
			kEnd := stringEnd(data, i)
			key := data[i:kEnd]
			i = skipSpace(data, skipSpace(data, kEnd)+1) // past ':'
			vEnd := valueEnd(data, i)
			if !yield(Member{Key: key, Start: i, End: vEnd}) {
				return
			}
			i = skipSpace(data, vEnd)
			if data[i] == ',' {
				i = skipSpace(data, i+1)
			}
		}
	}, true
}

// Name returns the name a key stands for, escapes decoded.
func Name(key []byte) (string, bool) {
	name := key[1 : len(key)-1]
	if bytes.IndexByte(name, '\\') < 0 {
		return string(name), true
	}
	var s string
	if json.Unmarshal(key, &s) != nil {
		return "", false
	}
	return s, true
}

// NameIn returns the one of names that key (as Members yields it) stands for; ok is false if it
// stands for none. A key without escapes is compared as written, with no copy: the splices ask
// this of every member of every event.
func NameIn(key []byte, names []string) (name string, ok bool) {
	if bytes.IndexByte(key, '\\') < 0 {
		for _, n := range names {
			if string(key[1:len(key)-1]) == n {
				return n, true
			}
		}
		return "", false
	}
	if name, ok = Name(key); !ok || !slices.Contains(names, name) {
		return "", false
	}
	return name, true
}

// The scanners below read valid JSON only (Members checks it first).

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string that starts at data[i] ('"').
func stringEnd(data []byte, i int) int {
	for i++; ; i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// valueEnd returns the index after the value that starts at data[i].
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch data[i] {
			case '"':
				i = stringEnd(data, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(data) {
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}
