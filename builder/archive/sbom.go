package archive

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"yakimg/builder"
)

const spdxVersion = "SPDX-2.3"

// debianMirror is where a locked package's pool path downloads from.
const debianMirror = "https://deb.debian.org/debian/"

type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name             string            `json:"name"`
	SPDXID           string            `json:"SPDXID"`
	VersionInfo      string            `json:"versionInfo"`
	Supplier         string            `json:"supplier"`
	DownloadLocation string            `json:"downloadLocation"`
	FilesAnalyzed    bool              `json:"filesAnalyzed"`
	Checksums        []spdxChecksum    `json:"checksums,omitempty"`
	ExternalRefs     []spdxExternalRef `json:"externalRefs,omitempty"`
	Purpose          string            `json:"primaryPackagePurpose,omitempty"`
}

type spdxChecksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type spdxExternalRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// SBOM is the SPDX 2.3 JSON document of the image m describes: the image
// as the described package, CONTAINing one package per locked package
// (Debian or Alpine). It depends on the manifest alone (namespace from the image
// digest, creation time from source_date_epoch), so it is reproducible
// and a reader can regenerate it to check the archived copy.
func SBOM(m *builder.Manifest) ([]byte, error) {
	digest, ok := strings.CutPrefix(m.ImageDigest, "sha256:")
	if !ok || digest == "" {
		return nil, fmt.Errorf("manifest image_digest %q is not sha256:<hex>", m.ImageDigest)
	}
	const imageID = "SPDXRef-Image"
	doc := spdxDocument{
		SPDXVersion:       spdxVersion,
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              "yakimg-image-" + digest[:min(12, len(digest))],
		DocumentNamespace: "https://spdx.org/spdxdocs/yakimg-image-" + digest,
		CreationInfo: spdxCreationInfo{
			Created:  time.Unix(m.SourceDateEpoch, 0).UTC().Format(time.RFC3339),
			Creators: []string{"Tool: yakimg"},
		},
		Packages: []spdxPackage{{
			Name:             "yakimg-image",
			SPDXID:           imageID,
			VersionInfo:      m.ImageDigest,
			Supplier:         "NOASSERTION",
			DownloadLocation: "NOASSERTION",
			Purpose:          "OPERATING-SYSTEM",
		}},
		Relationships: []spdxRelationship{{Element: "SPDXRef-DOCUMENT", Type: "DESCRIBES", Related: imageID}},
	}
	for i, p := range m.Packages {
		// The index keeps IDs unique even where sanitising makes two
		// names alike; the manifest's order keeps them stable.
		id := fmt.Sprintf("SPDXRef-Package-%d-%s", i+1, spdxIDPart(p.Name))
		pkg := spdxPackage{
			Name:             p.Name,
			SPDXID:           id,
			VersionInfo:      p.Version,
			Supplier:         "Organization: Debian",
			DownloadLocation: debianMirror + p.Filename,
			Checksums:        []spdxChecksum{{Algorithm: "SHA256", Value: p.SHA256}},
			ExternalRefs: []spdxExternalRef{{
				Category: "PACKAGE-MANAGER",
				Type:     "purl",
				// As common SBOM tools write Debian purls: the version is
				// path-escaped, which keeps an epoch's ':' and a '+'.
				Locator: "pkg:deb/debian/" + url.PathEscape(p.Name) + "@" + url.PathEscape(p.Version) + "?arch=" + url.QueryEscape(p.Arch),
			}},
		}
		if p.Source == "alpine" {
			// The mirror is the project's choice and may be private: the
			// lock pins the bytes, not a place to download them.
			pkg.Supplier, pkg.DownloadLocation = "NOASSERTION", "NOASSERTION"
			pkg.ExternalRefs[0].Locator = "pkg:apk/alpine/" + url.PathEscape(p.Name) + "@" + url.PathEscape(p.Version) + "?arch=" + url.QueryEscape(p.Arch)
		}
		doc.Packages = append(doc.Packages, pkg)
		doc.Relationships = append(doc.Relationships, spdxRelationship{Element: imageID, Type: "CONTAINS", Related: id})
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// spdxIDPart keeps what an SPDX identifier may hold: letters, digits, '.'
// and '-'.
func spdxIDPart(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, s)
}
