package resources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// Seed is what the local stack keeps in SSM Parameter Store and Secrets
// Manager: the local MESH sandbox's URL and its (public, test-only)
// credentials, as an AWS deployment keeps the real ones.
type Seed struct {
	Parameters map[string]string `json:"parameters"`
	Secrets    map[string]string `json:"secrets"`
}

// Store writes the seed, replacing earlier values. Values are never logged.
func (s Seed) Store(ctx context.Context, sm *secretsmanager.Client, ps *ssm.Client) error {
	for name, v := range s.Parameters {
		if v == "" {
			return fmt.Errorf("seed parameter %s has no value", name)
		}
		if _, err := ps.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(v), Type: ssmtypes.ParameterTypeString, Overwrite: aws.Bool(true)}); err != nil {
			return fmt.Errorf("seed parameter %s: %w", name, err)
		}
	}
	for name, v := range s.Secrets {
		if v == "" {
			return fmt.Errorf("seed secret %s has no value", name)
		}
		_, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(v)})
		var exists *smtypes.ResourceExistsException
		if errors.As(err, &exists) {
			_, err = sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(v)})
		}
		if err != nil {
			return fmt.Errorf("seed secret %s: %w", name, err)
		}
	}
	return nil
}

// ReadSeed reads a seed file, expanding ${VAR} with getenv and replacing
// "@PATH" values with the file's contents. An empty value is an error: it
// is nearly always an unset variable.
func ReadSeed(path string, getenv func(string) string) (Seed, error) {
	var seed Seed
	data, err := os.ReadFile(path)
	if err != nil {
		return seed, fmt.Errorf("seed: %w", err)
	}
	if err := json.Unmarshal(data, &seed); err != nil {
		return seed, fmt.Errorf("seed %s: %w", path, err)
	}
	expand := func(kind string, m map[string]string) error {
		for k, v := range m {
			v = os.Expand(v, getenv)
			if rest, ok := strings.CutPrefix(v, "@"); ok {
				b, err := os.ReadFile(rest)
				if err != nil {
					return fmt.Errorf("seed %s %s: %w", kind, k, err)
				}
				v = string(b)
			}
			if v == "" {
				return fmt.Errorf("seed %s %s is empty (is its environment variable set?)", kind, k)
			}
			m[k] = v
		}
		return nil
	}
	if err := expand("parameter", seed.Parameters); err != nil {
		return seed, err
	}
	return seed, expand("secret", seed.Secrets)
}
