//! The exported configuration file against Microsoft's sample shape: features, the group check
//! and the passwords filled by reference, every other byte kept.

use super::*;

/// An export of PRDBTS02 as the Configuration tool writes it for a server joined to the group
/// on PRDSQL01 (passwords blank), with TMS and BAM tools besides the four features.
const EXPORT: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Configuration ComputerName="PRDBTS02">
  <Feature Name="SSOServer,Engine" DisplayName="Enterprise Single Sign-On" Version="1.0">
    <Question ID="IsSecretServer" Answers="Create,Join" Default="Create">
      <Answer Value="Create" GUID="{FB7268BE-82D4-4cad-8CFF-6930303DA7E2}">
        <NTService ID="SHOULD-NOT-COUNT"><UserName>nobody</UserName><Domain>X</Domain><Password /></NTService>
      </Answer>
      <Answer Value="Join" GUID="{B9432756-1620-4bec-8CD9-E6D0B7805AA5}" Selected="Yes" />
    </Question>
    <NTService ID="ENTSSO" DisplayName="Enterprise Single Sign-On Service">
      <UserName>svc-sso</UserName>
      <Domain>CONTOSO</Domain>
      <Password />
    </NTService>
    <SQL ID="SSO_DB_ID"><Server>PRDSQL01</Server><Database>SSODB</Database></SQL>
  </Feature>
  <Feature Name="WMI" DisplayName="BizTalk Server Group">
    <SQL ID="{D757DBF9-5D71-4995-9F20-A552B7DFE7F1}"><Server>prdsql01</Server><Database>BizTalkMgmtDb</Database></SQL>
    <Question ID="CREATEORJOIN" Answers="Create,Join" Default="Create">
      <Answer Value="Create" GUID="{C4DEF4B8-163E-4a8d-AB01-6C43917248B1}" />
      <Answer Value="Join" GUID="{4D12E6A3-552E-4936-9DD3-59E1190FA324}" Selected="Yes" />
    </Question>
  </Feature>
  <Feature Name="RulesEngine" DisplayName="Business Rules Engine">
    <SQL ID="{E6C5E071-D6EB-4c31-BFE6-CA16637FBEEB}"><Server>PRDSQL01</Server><Database>BizTalkRuleEngineDb</Database></SQL>
    <NTService ID="{6ABAD351-9C7B-423e-9FDE-3A5C52441C00}" DisplayName="Rule Engine Update Service">
      <UserName>CONTOSO\svc-bre</UserName>
      <Domain />
      <Password>
      </Password>
    </NTService>
  </Feature>
  <Feature Name="BAMTools" DisplayName="Business Activity Monitoring tools" />
  <Feature Name="TMS" DisplayName="BizTalk TMS">
    <NTService ID="{0BC99B44-CBB4-4108-AAA6-A0AE1CC1367D}" DisplayName="BizTalk TMS">
      <UserName>svc-tms</UserName>
      <Domain>CONTOSO</Domain>
      <Password />
      <IsGmsaAccount>False</IsGmsaAccount>
    </NTService>
  </Feature>
  <InstalledFeature>BAMTools</InstalledFeature>
  <InstalledFeature>BizTalkTMS</InstalledFeature>
</Configuration>
"#;

fn group() -> Group {
    serde_json::from_value(serde_json::json!({ "mgmt_server": "PRDSQL01", "sso_server": "PRDSQL01" }))
        .unwrap()
}

fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(a, s)| ((*a).to_owned(), (*s).to_owned())).collect()
}

#[test]
fn reads_the_features_and_the_computer() {
    let export = parse(EXPORT).unwrap();
    assert_eq!(export.computer_name(), Some("PRDBTS02"));
    assert_eq!(export.features(), ["SSOServer,Engine", "WMI", "RulesEngine", "BAMTools", "TMS"]);
    assert_eq!(export.installed_features(), ["BAMTools", "BizTalkTMS"]);
    assert!(
        export.mismatches(&group(), "prdbts02").is_empty(),
        "{:?}",
        export.mismatches(&group(), "PRDBTS02")
    );
}

#[test]
fn the_logons_are_those_that_apply() {
    let accounts: Vec<(String, String)> =
        parse(EXPORT).unwrap().logons().into_iter().map(|l| (l.feature, l.account)).collect();
    assert_eq!(
        accounts,
        [
            ("SSOServer,Engine".to_owned(), r"CONTOSO\svc-sso".to_owned()),
            ("RulesEngine".to_owned(), r"CONTOSO\svc-bre".to_owned()),
            ("TMS".to_owned(), r"CONTOSO\svc-tms".to_owned()),
        ]
    );
}

#[test]
fn passwords_become_xml_secret_references_and_nothing_else_changes() {
    let export = parse(EXPORT).unwrap();
    let filled = export
        .with_password_refs(&secrets(&[
            (r"contoso\SVC-SSO", "entsso-password"),
            (r"CONTOSO\svc-bre", "rules-engine-password"),
            (r"CONTOSO\svc-tms", "tms-password"),
        ]))
        .unwrap();
    let expected = EXPORT
        .replacen(
            "<Domain>CONTOSO</Domain>\n      <Password />",
            "<Domain>CONTOSO</Domain>\n      <Password>@@secret:entsso-password:xml@@</Password>",
            1,
        )
        .replacen(
            "<Password>\n      </Password>",
            "<Password>@@secret:rules-engine-password:xml@@</Password>",
            1,
        )
        .replacen(
            "<Password />\n      <IsGmsaAccount>",
            "<Password>@@secret:tms-password:xml@@</Password>\n      <IsGmsaAccount>",
            1,
        );
    assert_eq!(filled, expected);
    assert!(filled.contains(r#"<NTService ID="SHOULD-NOT-COUNT"><UserName>nobody</UserName><Domain>X</Domain><Password /></NTService>"#));
    assert!(parse(&filled).is_ok());
}

#[test]
fn a_logon_without_a_secret_is_named() {
    let export = parse(EXPORT).unwrap();
    let missing = export
        .with_password_refs(&secrets(&[(r"CONTOSO\svc-sso", "a"), (r"CONTOSO\svc-bre", "b")]))
        .unwrap_err();
    assert_eq!(missing.len(), 1);
    assert_eq!(
        (missing[0].service.as_str(), missing[0].account.as_str()),
        ("BizTalk TMS", r"CONTOSO\svc-tms")
    );
}

#[test]
fn another_group_another_computer_or_a_create_answer_are_mismatches() {
    let other = EXPORT
        .replace("prdsql01", "OTHERSQL")
        .replace(r#"ComputerName="PRDBTS02""#, r#"ComputerName="PRDBTS01""#)
        .replacen(
            r#"GUID="{FB7268BE-82D4-4cad-8CFF-6930303DA7E2}">"#,
            r#"GUID="{FB7268BE-82D4-4cad-8CFF-6930303DA7E2}" Selected="Yes">"#,
            1,
        )
        .replace(
            r#"GUID="{B9432756-1620-4bec-8CD9-E6D0B7805AA5}" Selected="Yes""#,
            r#"GUID="{B9432756-1620-4bec-8CD9-E6D0B7805AA5}""#,
        );
    assert_eq!(
        parse(&other).unwrap().mismatches(&group(), "PRDBTS02"),
        [
            "it was exported from PRDBTS01, not PRDBTS02",
            "its SSO feature answers Create to IsSecretServer, not Join",
            "its group database is OTHERSQL/BizTalkMgmtDb, not PRDSQL01/BizTalkMgmtDb",
        ]
    );
    let no_group = EXPORT.replace(r#"Feature Name="WMI""#, r#"Feature Name="Elsewhere""#);
    assert_eq!(parse(&no_group).unwrap().mismatches(&group(), "PRDBTS02"), ["it has no group feature (WMI)"]);
}

#[test]
fn what_is_not_a_configuration_file_is_said() {
    assert_eq!(parse("<Bindings/>").unwrap_err(), "its root element is <Bindings>, not <Configuration>");
    assert!(parse("<Configuration><Feature></Configuration>").is_err());
    assert!(parse("").unwrap_err().contains("no root element"));
}

#[test]
fn log_names_match_feature_names() {
    assert!(same_feature("SSOServer,Engine", "SSOServer,Engine") && same_feature("SSOServer,Engine", "SSO"));
    assert!(same_feature("Engine,BTSCfg", "Runtime") && same_feature("BAMTools", "BAMTools"));
    assert!(!same_feature("BAMTools", "TMS"));
}
