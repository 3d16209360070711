package transport

import (
	"path"
	"strings"
	"unicode"

	"github.com/ferryhq/ferry/domain"
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

// DeliveredName is the name of transfer t's delivered file: its
// destination's filename template (domain.FilenameFields) expanded with
// values each made safe by SafeFilename, so none can add a folder or climb
// out of one. The default template gives the upload's own name, made safe.
// Every attempt of a transfer gets the same name: the values come from its
// request, the date and time from when it was requested.
func DeliveredName(t domain.State) string {
	filename := t.Request.Filename
	if filename == "" {
		filename = path.Base(t.Request.Source.Key)
	}
	filename = SafeFilename(filename, t.ID)
	ext := path.Ext(filename)
	if ext == filename { // ".profile": a name, not an extension
		ext = ""
	}
	created := t.Created.UTC()
	return domain.ExpandFilename(t.Request.Destination.Filename, func(field string) string {
		switch field {
		case "filename":
			return filename
		case "name":
			return strings.TrimSuffix(filename, ext)
		case "ext":
			return ext
		case "sender":
			return safeValue(t.Request.Sender, "unknown")
		case "recipient":
			return safeValue(t.Request.Recipient, "unknown")
		case "workflow":
			return safeValue(t.Request.Workflow, "none")
		case "transferId":
			return safeValue(t.ID, "transfer")
		case "date":
			return created.Format("2006-01-02")
		case "time":
			return created.Format("150405")
		}
		return "" // CheckFilenameTemplate admits no other field
	})
}

// safeValue is SafeFilename for a value that is not a path: a separator in
// it is one more unsafe character, not the start of its base name.
func safeValue(v, fallback string) string {
	return SafeFilename(strings.NewReplacer("/", "_", `\`, "_").Replace(v), fallback)
}
