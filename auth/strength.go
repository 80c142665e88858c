package auth

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrWeakPassword: a new password breaks a rule of PasswordStrength. The wrapped text is the
// reason, written for the person who typed it.
var ErrWeakPassword = errors.New("auth: password too weak")

// Password rules (see PasswordStrength).
const (
	MinPasswordLength  = 8   // characters
	MaxPasswordLength  = 256 // characters; long passphrases are welcome, megabytes are not
	MinPasswordEntropy = 36  // bits, as estimated by PasswordStrength
)

// PasswordStrength estimates how hard pw is to guess, in bits, and says whether it is acceptable
// for a new password; if not, reason tells the person why, in a sentence.
//
// The rules: 8 to 256 characters, and an estimate of at least 36 bits. The estimate starts from
// the character classes used (lower case 26, upper case 26, digits 10, ASCII symbols and space 33,
// anything else 100): each character is worth log2 of their total size. Then what guessers try
// first is priced at what it costs them instead:
//   - a common password or word from a short list (also spelt with @, 4, 3, 1, !, 0, $, 5 or 7 for
//     letters) costs about 8 bits, plus one for capitals and one for substitutions;
//   - a run of 3 or more repeated, consecutive (abc, 987) or keyboard-adjacent (qwerty) characters
//     costs one character plus log2 of its length plus 1;
//   - a year from 1900 to 2099 costs 7 bits;
//   - a password made of one block repeated costs the block plus log2 of the repetitions.
//
// It is a quick heuristic, not zxcvbn: random 8-character passwords of lower case and digits pass
// (41 bits), "Summer2024!", "P@ssw0rd123" and "qwertyuiop" do not.
func PasswordStrength(pw string) (entropy float64, ok bool, reason string) {
	n := utf8.RuneCountInString(pw)
	if n > MaxPasswordLength { // before estimating: the estimate is quadratic in the length
		return 0, false, fmt.Sprintf("Use at most %d characters.", MaxPasswordLength)
	}
	entropy, finding := estimate([]rune(pw))
	switch {
	case n < MinPasswordLength:
		return entropy, false, fmt.Sprintf("Use at least %d characters.", MinPasswordLength)
	case entropy < MinPasswordEntropy:
		if finding == "" {
			finding = "it is too short for the kinds of characters it uses"
		}
		return entropy, false, fmt.Sprintf("Too easy to guess: %s. Use a longer password, or a few unrelated words.", finding)
	}
	return entropy, true, ""
}

// CheckPassword returns nil if pw is acceptable as a new password, else ErrWeakPassword wrapped
// with the reason of PasswordStrength.
func CheckPassword(pw string) error {
	if _, ok, reason := PasswordStrength(pw); !ok {
		return fmt.Errorf("%w: %s", ErrWeakPassword, reason)
	}
	return nil
}

// commonWords are stems of the most used passwords and the words they are built on (4 letters or
// more; shorter ones are cheap as plain characters anyway). The list is short on purpose: it
// catches the obvious, it does not replace a breach corpus.
var commonWords = strings.Fields(`
	password passwort passw0rd letmein welcome admin administrator iloveyou monkey dragon master
	sunshine princess football baseball soccer hockey basketball shadow superman batman trustno
	michael jennifer jessica ashley hunter ranger killer george charlie andrew michelle jordan
	harley robert matthew daniel thomas summer winter spring autumn secret login access flower
	hello freedom whatever starwars pokemon cheese computer internet samsung apple google
	liverpool chelsea arsenal changeme default guest root user test qwerty azerty qazwsx
	mustang buster tigger ginger pepper cookie banana orange purple silver golden diamond
	lovely angel baby family friend friends happy money bitcoin crypto wallet exchange
	january february march april june july august september october november december
	monday tuesday wednesday thursday friday saturday sunday idlog barong
	`)

var leet = map[rune]rune{'@': 'a', '4': 'a', '3': 'e', '1': 'i', '!': 'i', '0': 'o', '$': 's', '5': 's', '7': 't'}

var keyboardRows = []string{"`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./"}

func estimate(pw []rune) (bits float64, finding string) {
	if len(pw) == 0 {
		return 0, ""
	}
	// A repeated block ("abcabcabc") is worth one block and the count.
	for p := 1; p <= len(pw)/2; p++ {
		if len(pw)%p == 0 && string(pw) == strings.Repeat(string(pw[:p]), len(pw)/p) {
			b, _ := estimate(pw[:p])
			return b + math.Log2(float64(len(pw)/p)), "it repeats the same characters"
		}
	}
	perChar := math.Log2(float64(poolSize(pw)))
	lower := []rune(strings.ToLower(string(pw)))
	if len(lower) != len(pw) { // lower-casing changed the length (rare scripts): skip patterns
		return perChar * float64(len(pw)), ""
	}
	unleet := make([]rune, len(lower))
	for i, r := range lower {
		if l, ok := leet[r]; ok {
			unleet[i] = l
		} else {
			unleet[i] = r
		}
	}
	wordBits := math.Log2(float64(len(commonWords)))
	for i := 0; i < len(pw); {
		if w := longestWord(unleet[i:]); w > 0 {
			bits += wordBits
			if string(pw[i:i+w]) != string(lower[i:i+w]) {
				bits++ // capitals
			}
			if string(unleet[i:i+w]) != string(lower[i:i+w]) {
				bits++ // substitutions
			}
			finding = fmt.Sprintf("it contains the common word %q", string(unleet[i:i+w]))
			i += w
			continue
		}
		if isYear(lower, i) {
			bits += 7
			if finding == "" {
				finding = "it contains a year"
			}
			i += 4
			continue
		}
		if n := runLength(lower[i:]); n >= 3 {
			bits += perChar + math.Log2(float64(n)) + 1
			if finding == "" {
				finding = "it contains a sequence or repeated characters"
			}
			i += n
			continue
		}
		bits += perChar
		i++
	}
	return bits, finding
}

func poolSize(pw []rune) int {
	var lower, upper, digit, symbol, other bool
	for _, r := range pw {
		switch {
		case 'a' <= r && r <= 'z':
			lower = true
		case 'A' <= r && r <= 'Z':
			upper = true
		case '0' <= r && r <= '9':
			digit = true
		case r < unicode.MaxASCII:
			symbol = true
		default:
			other = true
		}
	}
	size := 0
	for _, c := range []struct {
		used bool
		n    int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {symbol, 33}, {other, 100}} {
		if c.used {
			size += c.n
		}
	}
	return size
}

func longestWord(s []rune) int {
	best := 0
	for _, w := range commonWords {
		if len(w) > best && len(w) <= len(s) && string(s[:len(w)]) == w {
			best = len(w)
		}
	}
	return best
}

func isYear(s []rune, i int) bool {
	if i+4 > len(s) || (i > 0 && unicode.IsDigit(s[i-1])) || (i+4 < len(s) && unicode.IsDigit(s[i+4])) {
		return false
	}
	y := string(s[i : i+4])
	return (strings.HasPrefix(y, "19") || strings.HasPrefix(y, "20")) && strings.Trim(y, "0123456789") == ""
}

// runLength is the length of the run of repeated, consecutive or keyboard-adjacent characters that
// starts s, in one direction; 1 if there is none.
func runLength(s []rune) int {
	if len(s) < 2 {
		return len(s)
	}
	kind := step(s[0], s[1])
	if kind == 0 {
		return 1
	}
	n := 2
	for n < len(s) && step(s[n-1], s[n]) == kind {
		n++
	}
	return n
}

// step classifies the move from a to b: 1 same, 2 next, 3 previous, 4 right on the keyboard,
// 5 left on the keyboard, 0 none of these.
func step(a, b rune) int {
	switch {
	case a == b:
		return 1
	case b == a+1:
		return 2
	case b == a-1:
		return 3
	}
	for _, row := range keyboardRows {
		i := strings.IndexRune(row, a)
		if i < 0 {
			continue
		}
		switch {
		case i+1 < len(row) && rune(row[i+1]) == b:
			return 4
		case i > 0 && rune(row[i-1]) == b:
			return 5
		}
	}
	return 0
}
