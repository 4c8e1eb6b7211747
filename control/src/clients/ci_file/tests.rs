//! The reader against hand-written files whose expansion is written out here, bad files
//! and their messages, and files it must survive.

use proptest::prelude::*;
use rustci_scheduler::When;

use super::*;

const THREE_STAGES: &str = include_str!("testdata/three_stages.gitlab-ci.yml");
const RUST_PROJECT: &str = include_str!("testdata/rust_project.gitlab-ci.yml");

fn ok(text: &str) -> PipelineDef {
    match parse("ci.yml", text, Mode::Lenient) {
        Ok(p) => p,
        Err(e) => panic!("refused: {e}"),
    }
}

fn refused(text: &str) -> String {
    match parse("ci.yml", text, Mode::Lenient) {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => e.to_string(),
    }
}

/// The line of the first line of `text` that starts with `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn var(name: &str, value: &str) -> Variable {
    Variable::new(name, value, true)
}

fn lit(name: &str, value: &str) -> Variable {
    Variable::new(name, value, false)
}

fn names(p: &PipelineDef) -> Vec<&str> {
    p.jobs.iter().map(|j| j.name.as_str()).collect()
}

fn job<'p>(p: &'p PipelineDef, name: &str) -> &'p JobDef {
    p.jobs
        .iter()
        .find(|j| j.name == name)
        .unwrap_or_else(|| panic!("no job {name:?} in {:?}", names(p)))
}

const EVERY_KEYWORD: &str = r#"
stages: [build, test, deploy]
variables:
  GLOBAL: g
  SHARED: from-global
  LITERAL:
    value: "$GLOBAL"
    expand: false
    description: shown in the run-pipeline form
workflow:
  auto_cancel:
    on_new_commit: interruptible
default:
  before_script: [echo default-before]
  after_script: [echo default-after]
  tags: [default-tag]
  interruptible: true
  timeout: 1h 30m

setup:
  stage: .pre
  script: echo setup

compile:
  stage: build
  parallel: 3
  script: [make part-$CI_NODE_INDEX]

matrix:
  stage: build
  parallel:
    matrix:
      - OS: [linux, mac]
        ARCH: [amd64, arm64]
      - OS: windows
  variables:
    SHARED: from-job
  tags: [$OS-runner]
  before_script: []
  script: [build $OS $ARCH]

unit:
  needs: [compile, "matrix: [windows]"]
  script: [run unit]
  after_script: []
  interruptible: false
  timeout: 600

pair:
  stage: test
  parallel:
    matrix:
      - OS: [linux, mac]
  needs:
    - job: matrix
      parallel:
        matrix:
          - OS: '$[[ matrix.OS ]]'
            ARCH: amd64
    - job: not-in-this-pipeline
      optional: true
      artifacts: false
  script: [pair $OS]

lonely:
  stage: test
  needs: []
  when: on_failure
  allow_failure: yes
  tags: [own]
  inherit:
    default: [timeout]
    variables: [GLOBAL]
  script: [echo lonely]

approve:
  stage: deploy
  when: manual
  script: [approve]

ship:
  stage: deploy
  when: manual
  allow_failure: false
  timeout: 3600
  script: [ship]

finally:
  stage: deploy
  when: always
  inherit:
    default: false
    variables: false
  script: [echo done]
"#;

#[test]
fn every_supported_keyword_expands_as_gitlab_does() {
    let t = EVERY_KEYWORD;
    let p = ok(t);
    assert_eq!(
        p.stages,
        strings(&[".pre", "build", "test", "deploy", ".post"])
    );
    assert_eq!(p.auto_cancel, AutoCancel::Interruptible);
    assert_eq!(p.warnings, vec![]);
    assert_eq!(
        names(&p),
        [
            "setup",
            "compile 1/3",
            "compile 2/3",
            "compile 3/3",
            "matrix: [linux, amd64]",
            "matrix: [linux, arm64]",
            "matrix: [mac, amd64]",
            "matrix: [mac, arm64]",
            "matrix: [windows]",
            "unit",
            "pair: [linux]",
            "pair: [mac]",
            "lonely",
            "approve",
            "ship",
            "finally",
        ]
    );
    let globals = vec![
        var("GLOBAL", "g"),
        var("SHARED", "from-global"),
        lit("LITERAL", "$GLOBAL"),
    ];
    let with_defaults = "( set -e\necho default-before\necho setup\n)\nrustci_status=$?\n\
                         (\necho default-after\n) || true\nexit \"$rustci_status\"\n";
    let base = JobDef {
        name: "setup".to_owned(),
        stage: ".pre".to_owned(),
        stage_index: 0,
        needs: None,
        command: with_defaults.to_owned(),
        labels: strings(&["default-tag"]),
        variables: globals.clone(),
        when: When::OnSuccess,
        allow_failure: false,
        interruptible: true,
        timeout_s: Some(5400),
        line: line_of(t, "setup:"),
    };
    assert_eq!(job(&p, "setup"), &base);

    for i in 1..=3 {
        let mut vars = globals.clone();
        vars.extend([
            lit("CI_NODE_INDEX", &i.to_string()),
            lit("CI_NODE_TOTAL", "3"),
        ]);
        let expected = JobDef {
            name: format!("compile {i}/3"),
            stage: "build".to_owned(),
            stage_index: 1,
            command: shell::compose(
                &strings(&["echo default-before"]),
                &strings(&["make part-$CI_NODE_INDEX"]),
                &strings(&["echo default-after"]),
            ),
            variables: vars,
            line: line_of(t, "compile:"),
            ..base.clone()
        };
        assert_eq!(job(&p, &expected.name), &expected);
    }

    let combos = [
        ("linux", Some("amd64")),
        ("linux", Some("arm64")),
        ("mac", Some("amd64")),
        ("mac", Some("arm64")),
        ("windows", None),
    ];
    for (i, (os, arch)) in combos.into_iter().enumerate() {
        let mut vars = vec![
            var("GLOBAL", "g"),
            var("SHARED", "from-job"),
            lit("LITERAL", "$GLOBAL"),
            lit("OS", os),
        ];
        vars.extend(arch.map(|a| lit("ARCH", a)));
        vars.extend([
            lit("CI_NODE_INDEX", &(i + 1).to_string()),
            lit("CI_NODE_TOTAL", "5"),
        ]);
        let name = match arch {
            Some(a) => format!("matrix: [{os}, {a}]"),
            None => format!("matrix: [{os}]"),
        };
        let expected = JobDef {
            name,
            stage: "build".to_owned(),
            stage_index: 1,
            // `before_script: []` overrides the default one.
            command: shell::compose(
                &[],
                &strings(&["build $OS $ARCH"]),
                &strings(&["echo default-after"]),
            ),
            labels: vec![format!("{os}-runner")],
            variables: vars,
            line: line_of(t, "matrix:"),
            ..base.clone()
        };
        assert_eq!(job(&p, &expected.name), &expected);
    }

    let unit = JobDef {
        name: "unit".to_owned(),
        stage: "test".to_owned(),
        stage_index: 2,
        needs: Some(strings(&[
            "compile 1/3",
            "compile 2/3",
            "compile 3/3",
            "matrix: [windows]",
        ])),
        command: "set -e\necho default-before\nrun unit\n".to_owned(),
        interruptible: false,
        timeout_s: Some(600),
        line: line_of(t, "unit:"),
        ..base.clone()
    };
    assert_eq!(job(&p, "unit"), &unit);

    for (i, os) in ["linux", "mac"].into_iter().enumerate() {
        let mut vars = globals.clone();
        vars.extend([
            lit("OS", os),
            lit("CI_NODE_INDEX", &(i + 1).to_string()),
            lit("CI_NODE_TOTAL", "2"),
        ]);
        let expected = JobDef {
            name: format!("pair: [{os}]"),
            stage: "test".to_owned(),
            stage_index: 2,
            // The matrix expression picks the instance of the same OS; the optional
            // need on a job that is not in the pipeline is ignored.
            needs: Some(vec![format!("matrix: [{os}, amd64]")]),
            command: shell::compose(
                &strings(&["echo default-before"]),
                &strings(&["pair $OS"]),
                &strings(&["echo default-after"]),
            ),
            variables: vars,
            line: line_of(t, "pair:"),
            ..base.clone()
        };
        assert_eq!(job(&p, &expected.name), &expected);
    }

    let lonely = JobDef {
        name: "lonely".to_owned(),
        stage: "test".to_owned(),
        stage_index: 2,
        needs: Some(vec![]),
        command: "set -e\necho lonely\n".to_owned(),
        labels: strings(&["own"]),
        variables: vec![var("GLOBAL", "g")],
        when: When::OnFailure,
        allow_failure: true,
        // `inherit: default: [timeout]` takes only the timeout.
        interruptible: false,
        timeout_s: Some(5400),
        line: line_of(t, "lonely:"),
    };
    assert_eq!(job(&p, "lonely"), &lonely);

    let deploy = |name: &str, script: &str| JobDef {
        name: name.to_owned(),
        stage: "deploy".to_owned(),
        stage_index: 3,
        command: shell::compose(
            &strings(&["echo default-before"]),
            &strings(&[script]),
            &strings(&["echo default-after"]),
        ),
        line: line_of(t, &format!("{name}:")),
        ..base.clone()
    };
    // A manual job may fail by default, and then does not block the later stages.
    assert_eq!(
        job(&p, "approve"),
        &JobDef {
            when: When::Manual { blocking: false },
            allow_failure: true,
            ..deploy("approve", "approve")
        }
    );
    assert_eq!(
        job(&p, "ship"),
        &JobDef {
            when: When::Manual { blocking: true },
            allow_failure: false,
            timeout_s: Some(3600),
            ..deploy("ship", "ship")
        }
    );
    assert_eq!(
        job(&p, "finally"),
        &JobDef {
            name: "finally".to_owned(),
            stage: "deploy".to_owned(),
            stage_index: 3,
            needs: None,
            command: "set -e\necho done\n".to_owned(),
            labels: vec![],
            variables: vec![],
            when: When::Always,
            allow_failure: false,
            interruptible: false,
            timeout_s: None,
            line: line_of(t, "finally:"),
        }
    );
}

#[test]
fn shell_command_exports_the_variables_before_the_script() {
    let p = ok("a:\n  variables: {X: '1 2', Y: $X-b}\n  script: [echo \"$Y\"]\n");
    assert_eq!(
        job(&p, "a").shell_command(),
        "export X=\"1 2\"\nexport Y=\"$X-b\"\nset -e\necho \"$Y\"\n"
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(job(&p, "a").shell_command())
        .output()
        .expect("sh runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 2-b\n");
}

/// Issue 15's must-show-1 pipeline, exactly the jobs and needs the live test will run.
#[test]
fn the_end_to_end_pipeline_is_read_into_exactly_its_jobs() {
    let p = ok(THREE_STAGES);
    assert_eq!(p.warnings, vec![]);
    assert_eq!(
        p.stages,
        strings(&[".pre", "build", "test", "deploy", ".post"])
    );
    type Row<'a> = (
        &'a str,
        &'a str,
        Option<Vec<String>>,
        When,
        bool,
        Vec<String>,
    );
    let table: Vec<Row> = p
        .jobs
        .iter()
        .map(|j| {
            (
                j.name.as_str(),
                j.stage.as_str(),
                j.needs.clone(),
                j.when,
                j.allow_failure,
                j.labels.clone(),
            )
        })
        .collect();
    let need = |v: &[&str]| Some(strings(v));
    assert_eq!(
        table,
        vec![
            (
                "build: [amd64]",
                "build",
                None,
                When::OnSuccess,
                false,
                strings(&["amd64"])
            ),
            (
                "build: [arm64]",
                "build",
                None,
                When::OnSuccess,
                false,
                strings(&["arm64"])
            ),
            (
                "unit",
                "test",
                need(&["build: [amd64]", "build: [arm64]"]),
                When::OnSuccess,
                false,
                strings(&["amd64"])
            ),
            (
                "integration",
                "test",
                need(&["build: [arm64]"]),
                When::OnSuccess,
                false,
                strings(&["arm64"])
            ),
            (
                "lint",
                "test",
                need(&[]),
                When::OnSuccess,
                true,
                strings(&["amd64"])
            ),
            (
                "publish",
                "deploy",
                need(&["unit", "integration"]),
                When::OnSuccess,
                false,
                strings(&["amd64"])
            ),
            (
                "report",
                "deploy",
                None,
                When::OnSuccess,
                false,
                strings(&["arm64"])
            ),
            (
                "cleanup",
                "deploy",
                None,
                When::Always,
                false,
                strings(&["amd64"])
            ),
        ]
    );
    assert_eq!(
        job(&p, "integration").command,
        "set -e\necho \"integration tests on arm64\"\nexit 1\n"
    );
    assert_eq!(
        job(&p, "build: [arm64]").variables,
        vec![
            var("APP", "demo"),
            lit("ARCH", "arm64"),
            lit("CI_NODE_INDEX", "2"),
            lit("CI_NODE_TOTAL", "2")
        ]
    );
}

#[test]
fn a_typical_rust_project_reads_with_only_the_expected_warnings() {
    let t = RUST_PROJECT;
    let p = ok(t);
    let warnings: Vec<(&str, Option<&str>, usize)> = p
        .warnings
        .iter()
        .map(|w| (w.keyword.as_str(), w.job.as_deref(), w.line))
        .collect();
    assert_eq!(
        warnings,
        vec![
            ("image", None, line_of(t, "image:")),
            ("default:cache", None, line_of(t, "  cache:")),
            // Merged from the `.rules` template by `<<: [*linux, *rules]`: its line
            // is where it is written.
            ("rules", Some("clippy"), line_of(t, "  rules:")),
            ("artifacts", Some("test"), line_of(t, "  artifacts:")),
        ]
    );
    assert_eq!(
        p.warnings[0].to_string(),
        format!("line {}: `image` is not supported: the job runs in the runner's own environment, without this image", line_of(t, "image:"))
    );
    assert_eq!(
        names(&p),
        [
            "fmt",
            "clippy",
            "test: [stable]",
            "test: [beta]",
            "miri",
            "release"
        ]
    );
    let linux = strings(&["linux", "docker"]);
    assert_eq!(job(&p, "fmt").labels, linux);
    assert_eq!(job(&p, "fmt").needs, Some(vec![]));
    assert_eq!(job(&p, "fmt").timeout_s, Some(1800));
    assert!(job(&p, "fmt").interruptible);
    // `!reference [.setup, before_script]` is a nested list, flattened.
    assert_eq!(
        job(&p, "clippy").command,
        "set -e\nrustc --version\ncargo --version\nrustup component add clippy\ncargo clippy --all-targets -- -D warnings\n"
    );
    assert_eq!(job(&p, "clippy").labels, linux);
    assert_eq!(job(&p, "test: [beta]").needs, Some(strings(&["clippy"])));
    assert_eq!(
        job(&p, "test: [beta]").variables,
        vec![
            var("CARGO_HOME", "$CI_PROJECT_DIR/.cargo"),
            var("CARGO_TERM_COLOR", "always"),
            lit("TOOLCHAIN", "beta"),
            lit("CI_NODE_INDEX", "2"),
            lit("CI_NODE_TOTAL", "2"),
        ]
    );
    let miri = job(&p, "miri");
    assert_eq!(
        (miri.when, miri.allow_failure, miri.timeout_s),
        (When::Manual { blocking: false }, true, Some(7200))
    );
    assert!(miri.labels.is_empty());
    let release = job(&p, "release");
    assert_eq!(release.needs, Some(strings(&["test: [stable]"])));
    assert!(!release.interruptible);
    assert_eq!(
        release.command,
        "( set -e\ncargo build --release\n)\nrustci_status=$?\n(\nls -l target/release\n) || true\nexit \"$rustci_status\"\n"
    );
    assert_eq!(p.auto_cancel, AutoCancel::Conservative);
}

#[test]
fn default_stages_and_the_stage_rule() {
    let p =
        ok("b:\n  stage: build\n  script: x\nt:\n  script: x\nd:\n  stage: deploy\n  script: x\n");
    assert_eq!(
        p.stages,
        strings(&[".pre", "build", "test", "deploy", ".post"])
    );
    let stages: Vec<(&str, u32, Option<Vec<String>>)> = p
        .jobs
        .iter()
        .map(|j| (j.stage.as_str(), j.stage_index, j.needs.clone()))
        .collect();
    assert_eq!(
        stages,
        vec![("build", 1, None), ("test", 2, None), ("deploy", 3, None)]
    );
}

#[test]
fn same_stage_needs_are_allowed() {
    let p =
        ok("stages: [s]\na:\n  stage: s\n  script: x\nb:\n  stage: s\n  needs: [a]\n  script: x\n");
    assert_eq!(job(&p, "b").needs, Some(strings(&["a"])));
}

#[test]
fn yaml_1_1_booleans_anchors_and_merge_keys() {
    let t = "\
.defaults: &defaults
  interruptible: yes
  tags: [a]
  script: [from-anchor]
job:
  <<: *defaults
  tags: [own]
other:
  <<: *defaults
  interruptible: off
";
    let p = ok(t);
    let j = job(&p, "job");
    assert!(j.interruptible);
    assert_eq!(
        j.labels,
        strings(&["own"]),
        "an explicit key wins over a merged one"
    );
    assert_eq!(j.command, "set -e\nfrom-anchor\n");
    assert!(!job(&p, "other").interruptible);
}

#[test]
fn yaml_errors_name_the_line_and_column() {
    let msg = refused("build:\n  script: [echo a\ntest:\n  script: x\n");
    assert!(msg.starts_with("ci.yml:3:"), "{msg}");
    assert!(msg.contains("YAML syntax error"), "{msg}");
    let msg = refused("a:\n  script: x\n b: 1\n");
    assert!(msg.starts_with("ci.yml:3:"), "{msg}");
    assert_eq!(
        refused("a:\n  script: x\n  script: y\n"),
        "ci.yml:3: key \"script\" appears twice in this mapping (first at line 2)"
    );
    assert!(refused("a:\n  script: *nowhere\n").starts_with("ci.yml:2:"));
}

#[test]
fn a_cycle_is_refused_naming_a_job_on_it() {
    let t = "stages: [s]\na:\n  stage: s\n  needs: [c]\n  script: x\nb:\n  stage: s\n  needs: [a]\n  script: x\nc:\n  stage: s\n  needs: [b]\n  script: x\n";
    assert_eq!(
        refused(t),
        "ci.yml:2: job \"a\": is on a cycle of needs: a needs c needs b needs a"
    );
    assert_eq!(
        refused("a:\n  needs: [a]\n  script: x\n"),
        "ci.yml:2: job \"a\": needs itself"
    );
}

#[test]
fn a_need_on_a_later_stage_is_refused() {
    let t = "build:\n  stage: build\n  needs: [ship]\n  script: x\nship:\n  stage: deploy\n  script: x\n";
    assert_eq!(
        refused(t),
        "ci.yml:3: job \"build\": (stage \"build\") needs \"ship\" of the later stage \"deploy\""
    );
}

#[test]
fn an_unknown_stage_or_need_is_refused() {
    assert_eq!(
        refused("stages: [build]\nlint:\n  stage: check\n  script: x\n"),
        "ci.yml:3: job \"lint\": stage \"check\" is not one of the pipeline's stages (.pre, build, .post)"
    );
    // Without `stage:` a job is in `test`, which this file does not list.
    assert_eq!(
        refused("stages: [build]\nlint:\n  script: x\n"),
        "ci.yml:2: job \"lint\": stage \"test\" is not one of the pipeline's stages (.pre, build, .post)"
    );
    assert_eq!(
        refused("a:\n  needs: [b, .hidden]\n  script: x\nb:\n  script: x\n.hidden:\n  script: x\n"),
        "ci.yml:2: job \"a\": needs \".hidden\", which is no job of the pipeline"
    );
    let t = "b:\n  stage: build\n  parallel:\n    matrix:\n      - OS: [linux]\n  script: x\nt:\n  needs:\n    - job: b\n      parallel:\n        matrix:\n          - OS: mac\n  script: x\n";
    assert_eq!(
        refused(t),
        "ci.yml:9: job \"t\": needs \"b: [mac]\", which is no job of the pipeline"
    );
}

#[test]
fn other_bad_jobs_are_refused_with_their_job() {
    assert_eq!(
        refused("a:\n  stage: test\n"),
        "ci.yml:1: job \"a\": the job has no `script`"
    );
    assert_eq!(
        refused("a:\n  extends: .t\n"),
        "ci.yml:1: job \"a\": the job has no `script` (its `extends` is not supported, so a script from the template does not count)"
    );
    assert_eq!(
        refused("a:\n  script: x\n  timeout: soon\n"),
        "ci.yml:3: job \"a\": `timeout: soon` is not a duration (examples: `3600`, `90 minutes`, `1h 30m`)"
    );
    assert_eq!(
        refused("a:\n  script: x\n  when: sometimes\n"),
        "ci.yml:3: job \"a\": `when: sometimes` is not one of on_success, on_failure, always, manual, delayed"
    );
    assert_eq!(
        refused("a:\n  script: x\n  parallel: 201\n"),
        "ci.yml:3: job \"a\": `parallel` must be from 1 to 200, got 201"
    );
    assert_eq!(
        refused("a:\n  script: x\n  parallel:\n    matrix:\n      - A: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]\n        B: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]\n"),
        "ci.yml:5: job \"a\": `parallel: matrix` makes 225 jobs; the limit is 200"
    );
    assert_eq!(
        refused("a:\n  script: x\n  tags: {a: b}\n"),
        "ci.yml:3: job \"a\": `tags` must be a string or a list of strings"
    );
    assert_eq!(
        refused("a:\n  script: x\n  variables:\n    1BAD: x\n"),
        "ci.yml:4: job \"a\": variable name \"1BAD\" must be letters, digits and underscores, not starting with a digit"
    );
    assert_eq!(
        refused("a:\n  script: x\n  parallel: 2\na 1/2:\n  script: y\n"),
        "ci.yml:4: job \"a 1/2\": job name \"a 1/2\" is used twice (first at line 1)"
    );
    assert_eq!(
        refused("a: [x]\n"),
        "ci.yml:1: top-level key \"a\" is not a keyword, and not a job: a job is a mapping"
    );
}

#[test]
fn empty_and_pre_post_only_pipelines_are_refused() {
    let none = "ci.yml:1: the file defines no jobs (names starting with `.` are hidden templates, not jobs)";
    assert_eq!(refused(""), none);
    assert_eq!(refused("# nothing\n"), none);
    assert!(refused(".t:\n  script: x\nvariables: {A: b}\n").ends_with(
        "the file defines no jobs (names starting with `.` are hidden templates, not jobs)"
    ));
    assert_eq!(
        refused("a:\n  stage: .pre\n  script: x\n"),
        "ci.yml:1: the pipeline has only jobs of the .pre and .post stages, which GitLab does not run alone"
    );
    assert_eq!(
        refused("- a\n- b\n"),
        "ci.yml:1: the top level must be a mapping of keywords and jobs"
    );
}

#[test]
fn too_many_jobs_after_expansion() {
    let mut t = String::new();
    for i in 0..51 {
        t.push_str(&format!("j{i}:\n  parallel: 200\n  script: x\n"));
    }
    let msg = refused(&t);
    assert_eq!(
        msg,
        format!(
            "ci.yml:{}: job \"j50\": the pipeline has 10200 jobs once parallel jobs are expanded; the limit is {MAX_PIPELINE_JOBS}",
            line_of(&t, "j50:")
        )
    );
    // 50 x 200 is exactly the limit.
    let at_limit: String = (0..50)
        .map(|i| format!("j{i}:\n  parallel: 200\n  script: x\n"))
        .collect();
    assert_eq!(ok(&at_limit).jobs.len(), MAX_PIPELINE_JOBS);
}

#[test]
fn oversized_files_are_refused_before_parsing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(".gitlab-ci.yml");
    // 100 MB, sparse: no disk is used, and nothing is read.
    let f = std::fs::File::create(&path).expect("create");
    f.set_len(100_000_000).expect("set_len");
    let err = parse_file(&path, Mode::Lenient).expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: 100000000 bytes, over the limit of {MAX_FILE_BYTES} bytes for a CI file (refused before parsing)",
            path.display()
        )
    );
    assert!(matches!(
        err,
        CiFileError::TooLarge {
            bytes: 100_000_000,
            ..
        }
    ));
    // Text handed over directly is held to the same limit.
    let big = "#".repeat(MAX_FILE_BYTES as usize + 1);
    assert!(matches!(
        parse("big.yml", &big, Mode::Lenient),
        Err(CiFileError::TooLarge { .. })
    ));
}

#[test]
fn parse_file_reads_and_names_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ci.yml");
    std::fs::write(&path, THREE_STAGES).expect("write");
    assert_eq!(
        parse_file(&path, Mode::Strict).expect("parses").jobs.len(),
        8
    );
    std::fs::write(&path, b"a:\n  script: [\"\xff\"]\n").expect("write");
    assert_eq!(
        parse_file(&path, Mode::Lenient)
            .expect_err("refused")
            .to_string(),
        format!("{}:2: the file is not UTF-8 text", path.display())
    );
    let missing = dir.path().join("missing.yml");
    let err = parse_file(&missing, Mode::Lenient).expect_err("refused");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read it:", missing.display())),
        "{err}"
    );
}

const UNSUPPORTED: &str = "\
include: other.yml
image: alpine
workflow:
  rules:
    - when: always
build:
  services: [postgres]
  script: make
  retry: 2
  colour: blue
  cache: {paths: [target]}
deploy:
  stage: deploy
  needs: [downstream, build]
  when: delayed
  start_in: 5 minutes
  allow_failure:
    exit_codes: [137]
  environment: production
  script: ./deploy
downstream:
  stage: test
  trigger: group/project
";

#[test]
fn unsupported_keywords_are_reported_with_their_job_and_line() {
    let t = UNSUPPORTED;
    let p = ok(t);
    let got: Vec<(&str, Option<&str>, usize)> = p
        .warnings
        .iter()
        .map(|w| (w.keyword.as_str(), w.job.as_deref(), w.line))
        .collect();
    assert_eq!(
        got,
        vec![
            ("include", None, 1),
            ("image", None, 2),
            ("workflow:rules", None, 4),
            ("services", Some("build"), 7),
            ("retry", Some("build"), 9),
            ("colour", Some("build"), 10),
            ("cache", Some("build"), 11),
            ("needs", Some("deploy"), 14),
            ("when:delayed", Some("deploy"), 15),
            ("allow_failure:exit_codes", Some("deploy"), 18),
            ("environment", Some("deploy"), 19),
            ("trigger", Some("downstream"), 23),
        ]
    );
    let said: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        said[3],
        "line 7: job \"build\": `services` is not supported: the job runs without these services"
    );
    assert_eq!(said[5], "line 10: job \"build\": `colour` is not supported: not a keyword of the supported subset; ignored");
    assert_eq!(said[7], "line 14: job \"deploy\": `needs` is not supported: the need on a `trigger` job, which is left out, is dropped");
    // What the lenient reading makes of them.
    assert_eq!(names(&p), ["build", "deploy"]);
    let deploy = job(&p, "deploy");
    assert_eq!(deploy.needs, Some(strings(&["build"])));
    assert_eq!(
        (deploy.when, deploy.allow_failure),
        (When::OnSuccess, false)
    );

    let strict = parse("ci.yml", t, Mode::Strict).expect_err("strict refuses");
    let msg = strict.to_string();
    assert!(msg.starts_with("ci.yml: 12 keywords outside the supported subset (strict mode):\n  line 1: `include` is not supported"), "{msg}");
    assert_eq!(msg.lines().count(), 13);
    assert_eq!(strict.line(), Some(1));
    let pages = ok("pages:\n  script: make site\n");
    assert_eq!(
        pages.warnings[0].to_string(),
        "line 1: job \"pages\": `pages` is not supported: no deployment or release is recorded"
    );
    // One is enough.
    let one =
        parse("ci.yml", "a:\n  script: x\n  image: alpine\n", Mode::Strict).expect_err("strict");
    assert_eq!(
        one.to_string(),
        "ci.yml: 1 keyword outside the supported subset (strict mode):\n  line 3: job \"a\": `image` is not supported: the job runs in the runner's own environment, without this image"
    );
}

#[test]
fn references_and_aliases_are_bounded() {
    // Each level ten times the one before: 10^7 nodes if expanded.
    let mut t = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g"])
    {
        let items = vec![format!("*{prev}"); 10].join(", ");
        t.push_str(&format!("{name}: &{name} [{items}]\n"));
    }
    t.push_str("job:\n  script: x\n");
    let msg = refused(&t);
    assert!(
        msg.contains(&format!("more than {MAX_NODES} nodes")),
        "{msg}"
    );

    let deep = format!(
        "a:\n  script: x\n  variables: {}1{}\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    assert!(refused(&deep).starts_with("ci.yml:3:"));
    let deep_block = format!("a:\n  script: x\nb:\n{}x\n", "- ".repeat(5_000));
    assert_eq!(
        refused(&deep_block),
        format!("ci.yml:4: collections nest deeper than {MAX_DEPTH} levels")
    );

    let looping =
        ".a:\n  script: !reference [.a, script]\njob:\n  script: !reference [.a, script]\n";
    assert_eq!(
        refused(looping),
        format!("ci.yml:2: `!reference` tags nest deeper than {MAX_REFERENCE_DEPTH} levels")
    );
    assert_eq!(
        refused("job:\n  script: !reference [.nowhere, script]\n"),
        "ci.yml:2: `!reference [.nowhere, script]`: .nowhere does not exist"
    );
    assert_eq!(
        refused("job:\n  script: !custom x\n"),
        "ci.yml:2: tag !custom is not supported (only YAML's own tags and GitLab's !reference)"
    );
}

#[test]
fn a_spec_header_is_reported_and_skipped() {
    let p = ok("spec:\n  inputs:\n    env: {}\n---\na:\n  script: x\n");
    assert_eq!(names(&p), ["a"]);
    assert_eq!(p.warnings[0].keyword, "spec");
    assert_eq!(
        refused("a:\n  script: x\n---\nb:\n  script: y\n"),
        "ci.yml:4: the file holds more than one YAML document"
    );
}

/// Edits that keep the files ASCII: deletions, insertions of YAML-ish characters,
/// duplicated and dropped lines.
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    let edit = (0..base.len(), 0..40usize, "[ -~\n]{0,12}", 0..4u8);
    proptest::collection::vec(edit, 1..6).prop_map(move |edits| {
        let mut text = base.to_owned();
        for (at, len, insert, kind) in edits {
            let at = at.min(text.len());
            let end = (at + len).min(text.len());
            match kind {
                0 => text.replace_range(at..end, ""),
                1 => text.insert_str(at, &insert),
                2 => {
                    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
                    let line = text[line_start..line_end].to_owned();
                    text.insert_str(line_start, &line);
                }
                _ => text.replace_range(at..end, &insert),
            }
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let _ = parse("ci.yml", &text, Mode::Lenient);
    }

    #[test]
    fn yaml_shaped_text_never_panics(text in "([a-z.:\\- \\[\\]{}&*!|>'\"#,<$]|\n  |\n- ){0,200}") {
        let _ = parse("ci.yml", &text, Mode::Strict);
    }

    #[test]
    fn mutated_valid_files_never_panic(text in prop_oneof![mutated(THREE_STAGES), mutated(RUST_PROJECT), mutated(EVERY_KEYWORD)]) {
        match parse("ci.yml", &text, Mode::Lenient) {
            Ok(p) => {
                // Whatever it accepts, the core accepts, and it is within the limits.
                prop_assert!(!p.jobs.is_empty() && p.jobs.len() <= MAX_PIPELINE_JOBS);
                for j in &p.jobs {
                    prop_assert_eq!(&p.stages[j.stage_index as usize], &j.stage);
                }
            }
            Err(e) => {
                // Every refusal but an unreadable file says where.
                prop_assert!(e.line().is_some(), "{}", e);
            }
        }
    }
}

#[test]
fn anchors_nested_in_anchors_count_their_copies() {
    // 100 levels of anchored lists around 20,000 scalars: each anchor keeps a copy of
    // what is below it, 2 million nodes in all.
    let mut t = String::from("a:\n  script: x\nb: ");
    for i in 0..99 {
        t.push_str(&format!("&a{i} ["));
    }
    t.push_str(&vec!["x"; 20_000].join(","));
    t.push_str(&"]".repeat(99));
    t.push('\n');
    let msg = refused(&t);
    assert_eq!(msg, format!("ci.yml:3: the document has more than {MAX_NODES} nodes once anchors and references are expanded"));
}

#[test]
fn a_matrix_need_on_a_job_without_a_matrix_names_the_instance() {
    let t = "b:\n  stage: build\n  script: x\nt:\n  needs:\n    - job: b\n      parallel:\n        matrix:\n          - OS: [mac, linux]\n  script: x\n";
    assert_eq!(
        refused(t),
        "ci.yml:6: job \"t\": needs \"b: [mac]\", which is no job of the pipeline"
    );
}
