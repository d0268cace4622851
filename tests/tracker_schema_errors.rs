//! Broken schema.toml files: each must be refused with a precise `file:line:col` message.

use roundup_xmlrpc::schema::{parse_schema, SchemaError};

/// A minimal valid user class (lines 1-3); test snippets start on line 4.
const USER: &str = "[class.user]\nkey = \"username\"\nproperties = { username = \"String\", password = \"Password\", roles = \"String\" }\n";

fn err(snippet: &str) -> String {
    let text = format!("{USER}{snippet}");
    match parse_schema(&text, "schema.toml") {
        Ok(s) => panic!("schema accepted: {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn minimal_schema_is_valid() {
    let s = parse_schema(USER, "schema.toml").unwrap();
    assert_eq!(s.classes.len(), 1);
    assert_eq!(s.grants.len(), 10, "only the implicit Admin grants");
}

#[test]
fn unknown_type() {
    assert_eq!(
        err("[class.issue.properties]\ntitle = \"Strin\"\n"),
        "schema.toml:5:9: property \"title\" of class \"issue\": unknown type \"Strin\" \
         (expected one of: String, Password, Date, Interval, Link, Multilink, Boolean, Number, Integer)"
    );
    assert_eq!(
        err("[class.issue.properties]\ntitle = { type = \"string\" }\n"),
        "schema.toml:5:18: property \"title\" of class \"issue\": unknown type \"string\" \
         (type names are capitalised: String)"
    );
}

#[test]
fn link_needs_table_form() {
    assert_eq!(
        err("[class.issue.properties]\nowner = \"Link\"\n"),
        "schema.toml:5:9: property \"owner\" of class \"issue\": a Link needs a target class: \
         write { type = \"Link\", to = \"<class>\" }"
    );
    assert_eq!(
        err("[class.issue.properties]\nowner = { type = \"Multilink\" }\n"),
        "schema.toml:5:18: property \"owner\" of class \"issue\": a Multilink needs \"to\", \
         the name of the target class"
    );
}

#[test]
fn unknown_kind() {
    assert_eq!(
        err("[class.issue]\nkind = \"Issue\"\n"),
        "schema.toml:5:8: class \"issue\": unknown kind \"Issue\" (expected Class, FileClass or IssueClass)"
    );
}

#[test]
fn link_to_missing_class() {
    assert_eq!(
        err("[class.issue.properties]\nassignedto = { type = \"Link\", to = \"usr\" }\n"),
        "schema.toml:5:36: Link \"assignedto\" targets unknown class \"usr\""
    );
    assert_eq!(
        err("[class.issue.properties]\nkeyword = { type = \"Multilink\", to = \"kw\" }\n"),
        "schema.toml:5:38: Multilink \"keyword\" targets unknown class \"kw\""
    );
}

#[test]
fn issue_class_needs_msg_and_file() {
    assert_eq!(
        err("[class.issue]\nkind = \"IssueClass\"\n"),
        "schema.toml:5:8: IssueClass \"issue\" adds Multilink \"messages\" to class \"msg\", \
         which is not defined (define class \"msg\" or declare \"messages\" yourself)"
    );
}

#[test]
fn unknown_role_in_grant() {
    assert_eq!(
        err("[[grant]]\nroles = [\"User\", \"Develper\"]\npermission = \"View\"\n"),
        "schema.toml:5:18: grant names unknown role \"Develper\""
    );
    // Role names ignore case, and declared roles count.
    let ok = format!(
        "{USER}[[grant]]\nroles = [\"uSeR\", \"dev\"]\npermission = \"View\"\n[[role]]\nname = \"Dev\"\n"
    );
    let s = parse_schema(&ok, "schema.toml").unwrap();
    assert_eq!(s.grants.last().unwrap().roles, vec!["user", "dev"]);
}

#[test]
fn duplicate_property_and_class() {
    assert_eq!(
        err("[class.issue.properties]\ntitle = \"String\"\ntitle = \"Number\"\n"),
        "schema.toml:6:1: duplicate key title: TOML allows each key only once per table, so a \
         class, property, option or table header may appear only once"
    );
    assert_eq!(
        err("[class.issue]\n[class.issue]\n"),
        "schema.toml:5:8: duplicate key issue: TOML allows each key only once per table, so a \
         class, property, option or table header may appear only once"
    );
    assert_eq!(
        err("[class.issue.properties]\nTitle = \"String\"\ntitle = \"String\"\n"),
        "schema.toml:6:1: property \"title\" of class \"issue\" clashes with property \"Title\": \
         SQLite column names ignore case"
    );
}

#[test]
fn key_must_be_an_existing_string() {
    assert_eq!(
        err("[class.status]\nkey = \"order\"\nproperties = { name = \"String\", order = \"Number\" }\n"),
        "schema.toml:5:7: key \"order\" of class \"status\" must be a String property, not Number"
    );
    assert_eq!(
        err("[class.status]\nkey = \"nam\"\nproperties = { name = \"String\" }\n"),
        "schema.toml:5:7: key \"nam\" is not a property of class \"status\""
    );
}

#[test]
fn labelprop_and_orderprop_must_exist() {
    assert_eq!(
        err("[class.status]\nlabelprop = \"title\"\nproperties = { name = \"String\" }\n"),
        "schema.toml:5:13: labelprop \"title\" is not a property of class \"status\""
    );
    assert_eq!(
        err("[class.status]\norderprop = \"rank\"\nproperties = { name = \"String\" }\n"),
        "schema.toml:5:13: orderprop \"rank\" is not a property of class \"status\""
    );
    // Automatic properties are fine (Roundup's setorderprop accepts them).
    let ok = format!(
        "{USER}[class.status]\norderprop = \"creation\"\nproperties = {{ name = \"String\" }}\n"
    );
    assert_eq!(
        parse_schema(&ok, "s")
            .unwrap()
            .class("status")
            .unwrap()
            .orderprop(),
        "creation"
    );
}

#[test]
fn reserved_property_names() {
    assert_eq!(
        err("[class.issue.properties]\ncreator = { type = \"Link\", to = \"user\" }\n"),
        "schema.toml:5:1: property name \"creator\" is reserved (every class has id, creation, \
         activity, creator and actor)"
    );
    assert_eq!(
        err("[class.issue.properties]\nid = \"String\"\n"),
        "schema.toml:5:1: property name \"id\" is reserved (every class has id, creation, \
         activity, creator and actor)"
    );
    assert_eq!(
        err("[class.issue.properties]\n_secret = \"String\"\n"),
        "schema.toml:5:1: property name \"_secret\" is reserved: names starting with \"_\" are internal"
    );
}

#[test]
fn invalid_identifiers() {
    assert_eq!(
        err("[class.issue2]\n"),
        "schema.toml:4:8: invalid class name \"issue2\": it must start with a letter, contain \
         only letters, digits and \"_\", and end with a letter or \"_\""
    );
    assert_eq!(
        err("[class.\"bug-report\"]\n"),
        "schema.toml:4:8: invalid class name \"bug-report\": it must start with a letter, contain \
         only letters, digits and \"_\", and end with a letter or \"_\""
    );
    assert_eq!(
        err("[class.issue.properties]\n\"due-date\" = \"Date\"\n"),
        "schema.toml:5:1: invalid property name \"due-date\": it must start with a letter and \
         contain only letters, digits and \"_\""
    );
}

#[test]
fn unknown_keys_everywhere() {
    assert_eq!(
        err("[class.issue]\nkindd = \"IssueClass\"\n"),
        "schema.toml:5:1: unknown key \"kindd\" in class \"issue\" (expected one of: kind, key, \
         labelprop, orderprop, properties)"
    );
    assert_eq!(
        err("[class.issue.properties]\ntitle = { type = \"String\", index = true }\n"),
        "schema.toml:5:28: unknown key \"index\" in property \"title\" of class \"issue\" \
         (expected one of: type, to, indexme, do_journal, quiet, required)"
    );
    assert_eq!(
        err("[classes.issue]\n"),
        "schema.toml:4:2: unknown key \"classes\" in the schema (expected one of: class, role, \
         grant, detectors)"
    );
    assert_eq!(
        err("[[grant]]\nrole = \"User\"\n"),
        "schema.toml:5:1: unknown key \"role\" in [[grant]] (expected one of: roles, permission, \
         class, properties, props_only, check, description)"
    );
    assert_eq!(
        err("[detectors]\nnosyreactor = true\n"),
        "schema.toml:5:1: unknown key \"nosyreactor\" in [detectors] (expected one of: \
         statusauditor, nosyreaction, messagesummary, userauditor, no_texthtml, preset_new, \
         init_severity, patches_text_plain, patches_keyword, python)"
    );
}

#[test]
fn options_that_do_not_apply() {
    assert_eq!(
        err("[class.issue.properties]\ncount = { type = \"Number\", indexme = true }\n"),
        "schema.toml:5:28: property \"count\" of class \"issue\": \"indexme\" applies only to \
         String properties, not Number"
    );
    assert_eq!(
        err("[class.issue.properties]\ntitle = { type = \"String\", quiet = \"yes\" }\n"),
        "schema.toml:5:36: \"quiet\" of property \"title\" of class \"issue\" must be true or \
         false, not a string"
    );
}

#[test]
fn check_that_does_not_parse() {
    assert_eq!(
        err("[[grant]]\nroles = [\"User\"]\npermission = \"View\"\nclass = \"user\"\ncheck = \"id = $user\"\n"),
        "schema.toml:8:9: check \"id = $user\": column 4: unexpected \"=\" (did you mean \"==\"?)"
    );
}

#[test]
fn check_naming_unknown_property() {
    assert_eq!(
        err("[[grant]]\nroles = [\"User\"]\npermission = \"Edit\"\nclass = \"user\"\ncheck = \"owner == $user\"\n"),
        "schema.toml:8:9: check names \"owner\", which is not a property of class \"user\""
    );
    assert_eq!(
        err("[[grant]]\nroles = [\"User\"]\npermission = \"Edit\"\nclass = \"user\"\ncheck = \"username contains $user\"\n"),
        "schema.toml:8:9: check uses \"username contains ...\", but \"username\" is not a \
         Multilink of class \"user\""
    );
}

#[test]
fn check_without_class() {
    assert_eq!(
        err("[[grant]]\nroles = [\"User\"]\npermission = \"View\"\ncheck = \"id == $user\"\n"),
        "schema.toml:7:9: a grant with a \"check\" needs a \"class\" (the check reads that class's item)"
    );
}

#[test]
fn grant_properties_must_exist() {
    assert_eq!(
        err("[[grant]]\nroles = [\"User\"]\npermission = \"View\"\nclass = \"user\"\nproperties = [\"id\", \"adress\"]\n"),
        "schema.toml:8:21: grant property \"adress\" is not a property of class \"user\""
    );
    assert_eq!(
        err("[[grant]]\nroles = [\"User\"]\npermission = \"View\"\nclass = \"usr\"\n"),
        "schema.toml:7:9: grant names unknown class \"usr\""
    );
    assert_eq!(
        err("[[grant]]\nroles = [\"User\"]\npermission = \"View\"\nclass = \"user\"\nprops_only = true\n"),
        "schema.toml:8:1: \"props_only\" has no effect without \"properties\""
    );
}

#[test]
fn sqlite_table_collisions() {
    assert_eq!(
        err("[class.Issue]\n[class.issue]\n"),
        "schema.toml:5:8: class \"issue\" needs SQLite table \"_issue\", which class \"Issue\" \
         also needs (SQLite table names ignore case)"
    );
    assert_eq!(
        err("[class.a.properties]\nb_c = { type = \"Multilink\", to = \"user\" }\n[class.a_b.properties]\nc = { type = \"Multilink\", to = \"user\" }\n"),
        "schema.toml:7:1: Multilink \"c\" of class \"a_b\" needs SQLite table \"a_b_c\", which \
         Multilink \"b_c\" of class \"a\" also needs (SQLite table names ignore case)"
    );
}

#[test]
fn detectors_need_their_properties() {
    assert_eq!(
        err("[detectors]\nmessagesummary = true\n"),
        "schema.toml:5:1: detector \"messagesummary\" names class \"msg\", which is not in the \
         schema (true stands for Roundup's registration; list the classes it runs on with \
         classes = [...])"
    );
    assert_eq!(
        err("[detectors]\nstatusauditor = { chatting_requires_two_users = 1 }\n"),
        "schema.toml:5:49: \"chatting_requires_two_users\" must be true or false, not an integer"
    );
    // Checked per listed class, blaming that class.
    let bug = "[class.status]\nkey = \"name\"\nproperties = { name = \"String\" }\n\
               [class.msg]\nkind = \"FileClass\"\n[class.file]\nkind = \"FileClass\"\n\
               [class.bug]\nkind = \"IssueClass\"\n\
               [class.bug.properties]\nstatus = { type = \"Link\", to = \"status\" }\n\
               [class.task]\nproperties = { title = \"String\" }\n";
    assert_eq!(
        err(&format!(
            "{bug}[detectors]\nstatusauditor = {{ classes = [\"bug\", \"task\"] }}\n"
        )),
        "schema.toml:18:37: detector \"statusauditor\" on class \"task\" needs a Link property \
         \"status\" to class \"status\""
    );
    assert_eq!(
        err(&format!(
            "{bug}[detectors]\nnosyreaction = {{ classes = [\"task\"] }}\n"
        )),
        "schema.toml:18:29: detector \"nosyreaction\" on class \"task\" needs an IssueClass \
         (Roundup mails through IssueClass.nosymessage)"
    );
    assert_eq!(
        err(&format!(
            "{bug}[detectors]\nnosyreaction = {{ classes = [\"bug\"] }}\n"
        )),
        "schema.toml:18:29: detector \"nosyreaction\" on class \"bug\" needs a Link property \
         \"author\" to class \"user\" of class \"msg\""
    );
    assert_eq!(
        err(&format!(
            "{bug}[detectors]\nno_texthtml = {{ classes = [\"bug\"] }}\n"
        )),
        "schema.toml:18:28: detector \"no_texthtml\" on class \"bug\" needs a String property \
         \"type\""
    );
    assert_eq!(
        err(&format!(
            "{bug}[detectors]\npreset_new = {{ classes = [\"bgu\"] }}\n"
        )),
        "schema.toml:18:27: detector \"preset_new\" names class \"bgu\", which is not in the \
         schema"
    );
    assert_eq!(
        err(&format!(
            "{bug}[detectors]\ninit_severity = {{ classes = [\"bug\"] }}\n"
        )),
        "schema.toml:18:30: detector \"init_severity\" on class \"bug\" needs a Link property \
         \"severity\" to class \"severity\""
    );
}

#[test]
fn detector_tables() {
    assert_eq!(
        err("[detectors]\nuserauditor = { classes = [] }\n"),
        "schema.toml:5:27: \"classes\" of detector \"userauditor\" must name at least one class \
         (write userauditor = false to switch it off)"
    );
    assert_eq!(
        err("[detectors]\nuserauditor = { classes = [\"user\", \"user\"] }\n"),
        "schema.toml:5:36: class \"user\" is listed twice for detector \"userauditor\""
    );
    assert_eq!(
        err("[detectors]\nuserauditor = { classes = \"user\" }\n"),
        "schema.toml:5:27: \"classes\" of detector \"userauditor\" must be an array, not a string"
    );
    assert_eq!(
        err("[detectors]\nuserauditor = { chatting_requires_two_users = true }\n"),
        "schema.toml:5:17: unknown key \"chatting_requires_two_users\" in detector \
         \"userauditor\" (expected one of: enabled, classes)"
    );
    assert_eq!(
        err("[detectors]\npython = [\"../evil.py\"]\n"),
        "schema.toml:5:11: Python detector file \"../evil.py\": the path must stay inside the \
         tracker directory (no \"..\" or empty parts)"
    );
    assert_eq!(
        err("[detectors]\npython = [\"/etc/x.py\"]\n"),
        "schema.toml:5:11: Python detector file \"/etc/x.py\": the path must be relative to the \
         tracker directory"
    );
    assert_eq!(
        err("[detectors]\npython = [\"detectors/x.txt\"]\n"),
        "schema.toml:5:11: Python detector file \"detectors/x.txt\": the path must name a .py file"
    );
    assert_eq!(
        err("[detectors]\npython = [\"detectors/x.py\", \"detectors/x.py\"]\n"),
        "schema.toml:5:29: Python detector file \"detectors/x.py\" is listed twice"
    );
    // A switched-off detector is not checked; the Python list is kept in order.
    let s = parse_schema(
        &format!(
            "{USER}[detectors]\nmessagesummary = {{ enabled = false, classes = [\"nosuch\"] }}\n\
             userauditor = {{ classes = [\"user\"] }}\n\
             python = [\"detectors/b.py\", \"detectors/a.py\"]\n"
        ),
        "schema.toml",
    )
    .unwrap();
    assert_eq!(s.detectors.builtins.len(), 1);
    assert_eq!(s.detectors.python, ["detectors/b.py", "detectors/a.py"]);
}

#[test]
fn user_class_is_required() {
    let e = parse_schema("[class.issue]\n", "schema.toml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "schema.toml:1:2: the schema needs a class \"user\" (logins and roles are read from it)"
    );
    let e = parse_schema("[class.user]\nproperties = { username = \"String\", password = \"Password\", roles = \"String\" }\n", "schema.toml")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "schema.toml:1:8: class \"user\" needs key = \"username\" (logins look users up by it)"
    );
}

#[test]
fn invalid_toml() {
    assert_eq!(
        err("[class.issue]\nkind = \"IssueClass\nkey = 1\n"),
        "schema.toml:5:19: invalid TOML: invalid basic string, expected `\"`"
    );
}

#[test]
fn roles_are_validated() {
    assert_eq!(
        err("[[role]]\nname = \"a,b\"\n"),
        "schema.toml:5:8: invalid role name \"a,b\": it must be non-empty, without commas and \
         without leading or trailing spaces"
    );
    assert_eq!(
        err("[[role]]\nname = \"Dev\"\n[[role]]\nname = \"dev\"\n"),
        "schema.toml:7:8: role \"dev\" is declared twice (role names ignore case)"
    );
}

#[test]
fn io_error_names_the_file() {
    let e = roundup_xmlrpc::schema::load_schema(std::path::Path::new("/nonexistent/schema.toml"))
        .unwrap_err();
    assert!(matches!(e, SchemaError::Io { .. }));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/schema.toml: cannot read the file: "),
        "{e}"
    );
}
