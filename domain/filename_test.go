package domain

import (
	"strings"
	"testing"
)

func TestCheckFilenameTemplate(t *testing.T) {
	for _, ok := range []string{"", "{filename}", "{sender}/{date}/{filename}", "out-{transferId}.csv", "{name}_{time}{ext}", "a.b/c_d-e/{filename}"} {
		if err := CheckFilenameTemplate(ok); err != nil {
			t.Errorf("CheckFilenameTemplate(%q) = %v, want nil", ok, err)
		}
	}
	for _, tt := range []struct{ tmpl, want string }{
		{"{shoeSize}.csv", "unknown field {shoeSize}"},
		{"{filename", "unclosed '{'"},
		{"filename}", "'}' without its '{'"},
		{"../{filename}", "folders must be named"},
		{"/abs/{filename}", "folders must be named"},
		{"a//{filename}", "folders must be named"},
		{"{filename}/", "folders must be named"},
		{"in box/{filename}", `' ' is not allowed outside a field`},
		{`a\{filename}`, `'\\' is not allowed`},
		{"{date}.csv", "must use {filename}, {name} or {transferId}"},
		{"latest.csv", "must use {filename}, {name} or {transferId}"},
	} {
		err := CheckFilenameTemplate(tt.tmpl)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckFilenameTemplate(%q) = %v, want it to say %q", tt.tmpl, err, tt.want)
		}
	}
}

func TestExpandFilename(t *testing.T) {
	got := ExpandFilename("{sender}/{date}/{filename}", func(f string) string { return "<" + f + ">" })
	if want := "<sender>/<date>/<filename>"; got != want {
		t.Errorf("ExpandFilename = %q, want %q", got, want)
	}
	if got := ExpandFilename("", func(f string) string { return f }); got != "filename" {
		t.Errorf("empty template = %q, want the default {filename}", got)
	}
}

func TestDestinationFilename(t *testing.T) {
	for _, d := range []Destination{{Type: "s3", Bucket: "b", Filename: "{sender}/{filename}"}, {Type: "sftp", Endpoint: "p", Filename: "{transferId}{ext}"}, {Type: "azblob", Endpoint: "lake", Filename: "{filename}"}} {
		if err := d.Validate(); err != nil {
			t.Errorf("%+v: %v", d, err)
		}
	}
	for _, d := range []Destination{{Type: "mesh", Filename: "{filename}"}, {Type: "null", Filename: "{filename}"}, {Type: "https", Endpoint: "api", Filename: "{filename}"}} {
		if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "cannot name the delivered file") {
			t.Errorf("%+v: err = %v, want filename refused", d, err)
		}
	}
	if err := (Destination{Type: "s3", Filename: "{nope}"}).Validate(); err == nil || !strings.Contains(err.Error(), "needs a bucket") || !strings.Contains(err.Error(), "{nope}") {
		t.Errorf("every problem at once: err = %v", err)
	}
}
