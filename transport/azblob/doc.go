// Package azblob delivers transfers to Azure Blob Storage.
package azblob
