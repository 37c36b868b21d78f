// Package templates holds the commented devbox.toml templates that
// 'devbox init' writes, one per ecosystem, embedded in the binary. It picks
// the template that fits a project directory and renders it; it writes no
// files (package main does) and leaves parsing the result to package env.
//
// # Detection
//
// [Detect] looks for each template's marker files, in the order of [List]:
// go (go.mod), rust (Cargo.toml), java (pom.xml), gradle (build.gradle,
// build.gradle.kts), python (pyproject.toml, requirements.txt), ruby
// (Gemfile), node (package.json), and generic when none is present. The first
// marker found wins. A language's own build manifest comes before files that
// often sit beside it for tooling: a Go or Java service keeps a package.json
// for its web assets, a Rails app has one too, and requirements.txt often
// serves only documentation tools.
//
// # Templates
//
// Every template starts from [DefaultImage] and installs the ecosystem's
// toolchain with the image's package manager; each section says in a comment
// what it does, and devbox.toml.example documents every key. Every rendered
// template is a devbox.toml that env.Parse accepts.
package templates
