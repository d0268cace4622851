# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_roundup_xmlrpc_server_global_optspecs
    string join \n version i/instance= p/port= bind= trusted-proxy= forwarded-header= metrics-allow= max-connections-per-address= max-body-bytes-in-flight= e/encoding= log-format= V/verbose h/help
end

function __fish_roundup_xmlrpc_server_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_roundup_xmlrpc_server_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_roundup_xmlrpc_server_using_subcommand
    set -l cmd (__fish_roundup_xmlrpc_server_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -s i -l instance -d 'Serve the tracker in DIR' -r -F
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -s p -l port -d 'TCP port to listen on' -r
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -l bind -d 'IP address or host name to listen on' -r
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -l trusted-proxy -d 'Believe the forwarding header of requests from this proxy (repeatable)' -r
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -l forwarded-header -d 'The header the trusted proxies put the client address in' -r -f -a "x-forwarded-for\t'X-Forwarded-For: client, proxy1, ... (nginx, Apache, HAProxy, most load balancers)'
forwarded\t'RFC 7239 Forwarded: for=client, for=proxy1, ...'"
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -l metrics-allow -d 'Serve GET /metrics to clients of this address or network (repeatable)' -r
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -l max-connections-per-address -d 'Most connections open at once from one client address (0: no cap)' -r
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -l max-body-bytes-in-flight -d 'Most request-body bytes held in memory at once, over all requests' -r
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -s e -l encoding -d 'Accepted for compatibility with Roundup\'s server, and ignored' -r
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -l log-format -d 'Write log lines as text (the default) or as JSON, one object a line' -r -f -a "text\t'key=value text after the time and level'
json\t'One JSON object a line (timestamp, level, message and the same fields)'"
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -l version -d 'Print the version and exit'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -s V -l verbose -d 'Log more: -V debug, -VV trace (the default is info)'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -f -a "init" -d 'Create a new tracker'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -f -a "demo" -d 'Create (if missing) and serve a demo tracker, like roundup-demo'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -f -a "convert-schema" -d 'Write schema.toml for an existing Roundup tracker'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand init" -l admin-password-file -d 'Read the password of the admin user (user1) from FILE' -r -F
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand init" -l admin-password -d 'Password of the admin user (user1)' -r
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand init" -l template -d 'Copy the tracker from this template directory instead of the built-in classic template' -r -F
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand init" -l set -d 'Set a config.ini option (repeatable)' -r
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand init" -l log-format -d 'Write log lines as text (the default) or as JSON, one object a line' -r -f -a "text\t'key=value text after the time and level'
json\t'One JSON object a line (timestamp, level, message and the same fields)'"
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand init" -s V -l verbose -d 'Log more: -V debug, -VV trace (the default is info)'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand demo" -s p -l port -d 'TCP port to listen on' -r
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand demo" -l bind -d 'IP address or host name to listen on (see the server\'s --bind)' -r
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand demo" -l log-format -d 'Write log lines as text (the default) or as JSON, one object a line' -r -f -a "text\t'key=value text after the time and level'
json\t'One JSON object a line (timestamp, level, message and the same fields)'"
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand demo" -s V -l verbose -d 'Log more: -V debug, -VV trace (the default is info)'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand convert-schema" -l log-format -d 'Write log lines as text (the default) or as JSON, one object a line' -r -f -a "text\t'key=value text after the time and level'
json\t'One JSON object a line (timestamp, level, message and the same fields)'"
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand convert-schema" -l allow-unconverted -d 'Write schema.toml even when some checks or detectors cannot be converted (they are left out and reported)'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand convert-schema" -s V -l verbose -d 'Log more: -V debug, -VV trace (the default is info)'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand convert-schema" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand completions" -l log-format -d 'Write log lines as text (the default) or as JSON, one object a line' -r -f -a "text\t'key=value text after the time and level'
json\t'One JSON object a line (timestamp, level, message and the same fields)'"
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand completions" -s V -l verbose -d 'Log more: -V debug, -VV trace (the default is info)'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c roundup-xmlrpc-server -n "__fish_roundup_xmlrpc_server_using_subcommand completions" -f -a "bash zsh fish"
