package domain

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DefaultFilenameTemplate names a delivered file when its route does not:
// the upload's own (sanitised) file name.
const DefaultFilenameTemplate = "{filename}"

// FilenameFields are the names a destination's filename template may use,
// each in braces:
//
//	{filename}    the upload's file name (its filename metadata, else the
//	              last part of its key)
//	{name}        {filename} without its extension
//	{ext}         {filename}'s extension with its dot (".csv"), or ""
//	{sender}      the sending mailbox or organisation
//	{recipient}   the receiving one
//	{workflow}    the workflow id
//	{transferId}  the transfer's id
//	{date}        the day the transfer was requested, UTC, as 2006-01-02
//	{time}        the time it was requested, UTC, as 150405
//
// The values are sanitised where the name is made (transport.DeliveredName):
// no separators, "..", control or other unsafe characters. The date and
// time are the request's, so every attempt of a transfer names the same
// file.
var FilenameFields = []string{"filename", "name", "ext", "sender", "recipient", "workflow", "transferId", "date", "time"}

// ExpandFilename replaces each {field} of tmpl with value(field). The
// template must be valid (CheckFilenameTemplate); an empty one is
// DefaultFilenameTemplate.
func ExpandFilename(tmpl string, value func(field string) string) string {
	if tmpl == "" {
		tmpl = DefaultFilenameTemplate
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		b.WriteString(tmpl[:i])
		b.WriteString(value(tmpl[i+1 : i+j]))
		tmpl = tmpl[i+j+1:]
	}
}

// CheckFilenameTemplate reports every problem with a filename template: an
// unknown or unclosed field, or literal text that could escape the
// destination's folder. Literal text may use ASCII letters, digits, '.',
// '_', '-' and '/' between folder names (no empty, "." or ".." folder, no
// leading or trailing '/'), so "{sender}/{date}/{filename}" files by sender
// and day. A template must use at least one field that varies per file.
func CheckFilenameTemplate(tmpl string) error {
	if tmpl == "" {
		return nil
	}
	var errs []error
	var literal strings.Builder
	varies := false
	rest := tmpl
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			literal.WriteString(rest)
			break
		}
		literal.WriteString(rest[:i])
		if rest[i] == '}' {
			errs = append(errs, fmt.Errorf("filename template %q has a '}' without its '{'", tmpl))
			rest = rest[i+1:]
			continue
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			errs = append(errs, fmt.Errorf("filename template %q has an unclosed '{'", tmpl))
			break
		}
		field := rest[i+1 : i+j]
		switch {
		case !slices.Contains(FilenameFields, field):
			errs = append(errs, fmt.Errorf("filename template %q uses unknown field {%s} (known: %s)", tmpl, field, strings.Join(FilenameFields, ", ")))
		case field == "filename" || field == "name" || field == "transferId":
			varies = true
		}
		literal.WriteByte('x') // a field stands for a non-empty name part
		rest = rest[i+j+1:]
	}
	for _, r := range literal.String() {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || r == '/') {
			errs = append(errs, fmt.Errorf("filename template %q: %q is not allowed outside a field (use letters, digits, '.', '_', '-' and '/')", tmpl, r))
			break
		}
	}
	for _, seg := range strings.Split(literal.String(), "/") {
		if seg == "" || seg == "." || seg == ".." {
			errs = append(errs, fmt.Errorf("filename template %q: folders must be named (no leading, trailing or doubled '/', no '.' or '..')", tmpl))
			break
		}
	}
	if !varies {
		errs = append(errs, fmt.Errorf("filename template %q must use {filename}, {name} or {transferId}, or every file would get the same name", tmpl))
	}
	return errors.Join(errs...)
}
