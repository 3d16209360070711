package transport

import (
	"strings"
	"unicode"
)

// MaxFilename is the longest name, in bytes, SafeFilename returns.
const MaxFilename = 255

// maxExt is the longest extension SafeFilename keeps when it must shorten a
// name.
const maxExt = 16

// SafeFilename turns a sender-supplied name into one that is safe as a file
// name or object key suffix at any destination: the base name only (no
// directories, "." or ".."), control characters removed, every character
// other than ASCII letters, digits, '.', '_' and '-' replaced by '_', at most
// MaxFilename bytes (keeping a short extension when it must cut). When
// nothing usable is left, it returns fallback made safe the same way, and
// "file" if even that is empty. The result is never empty and never only
// dots.
func SafeFilename(name, fallback string) string {
	if s := safe(name); s != "" {
		return s
	}
	if s := safe(fallback); s != "" {
		return s
	}
	return "file"
}

func safe(name string) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	// Base name: the part after the last separator of either kind. A
	// trailing separator does not make the name empty.
	name = strings.TrimRight(name, `/\`)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := truncate(b.String())
	if strings.Trim(s, ".") == "" {
		return ""
	}
	return s
}

// truncate cuts an ASCII name to MaxFilename bytes, keeping its extension
// when the extension is short.
func truncate(s string) string {
	if len(s) <= MaxFilename {
		return s
	}
	ext := ""
	if i := strings.LastIndexByte(s, '.'); i > 0 && len(s)-i <= maxExt {
		ext = s[i:]
	}
	return s[:MaxFilename-len(ext)] + ext
}
