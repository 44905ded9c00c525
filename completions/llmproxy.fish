# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_llmproxy_global_optspecs
    string join \n config= h/help V/version
end

function __fish_llmproxy_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_llmproxy_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_llmproxy_using_subcommand
    set -l cmd (__fish_llmproxy_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c llmproxy -n "__fish_llmproxy_needs_command" -l config -d 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]' -r -F
complete -c llmproxy -n "__fish_llmproxy_needs_command" -s h -l help -d 'Print help'
complete -c llmproxy -n "__fish_llmproxy_needs_command" -s V -l version -d 'Print version'
complete -c llmproxy -n "__fish_llmproxy_needs_command" -f -a "serve" -d 'Run the HTTP proxy server'
complete -c llmproxy -n "__fish_llmproxy_needs_command" -f -a "providers" -d 'List the providers and model aliases (built in and from the config file)'
complete -c llmproxy -n "__fish_llmproxy_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c llmproxy -n "__fish_llmproxy_needs_command" -f -a "chat" -d 'Send one prompt and print the whole reply'
complete -c llmproxy -n "__fish_llmproxy_needs_command" -f -a "stream" -d 'Send one prompt and print the reply token by token as it arrives'
complete -c llmproxy -n "__fish_llmproxy_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand serve" -l host -d 'Address to listen on' -r
complete -c llmproxy -n "__fish_llmproxy_using_subcommand serve" -l port -d 'Port to listen on (0 picks a free one)' -r
complete -c llmproxy -n "__fish_llmproxy_using_subcommand serve" -l config -d 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]' -r -F
complete -c llmproxy -n "__fish_llmproxy_using_subcommand serve" -l check-config -d 'Validate the configuration (variables and config file), then exit 0 or 2 without listening'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand serve" -s h -l help -d 'Print help'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand providers" -l config -d 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]' -r -F
complete -c llmproxy -n "__fish_llmproxy_using_subcommand providers" -l json -d 'Print JSON instead of a table'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand providers" -s h -l help -d 'Print help'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand completions" -l config -d 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]' -r -F
complete -c llmproxy -n "__fish_llmproxy_using_subcommand completions" -s h -l help -d 'Print help'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand chat" -s m -l model -d 'Model name, as the provider spells it [default: an alias\'s model]' -r -f
complete -c llmproxy -n "__fish_llmproxy_using_subcommand chat" -s s -l system -d 'A system prompt' -r -f
complete -c llmproxy -n "__fish_llmproxy_using_subcommand chat" -l max-tokens -d 'Cap on generated tokens' -r
complete -c llmproxy -n "__fish_llmproxy_using_subcommand chat" -l temperature -d 'Sampling temperature (0 to 2; Anthropic accepts 0 to 1)' -r
complete -c llmproxy -n "__fish_llmproxy_using_subcommand chat" -l api-key -d 'API key [default: the provider\'s variable, e.g. OPENAI_API_KEY; see `llmproxy providers`]' -r -f
complete -c llmproxy -n "__fish_llmproxy_using_subcommand chat" -l retries -d 'Retries of a failed request (429, 5xx, refused connections) [default: UPSTREAM_MAX_RETRIES, else the provider\'s `retries`, else 2]' -r
complete -c llmproxy -n "__fish_llmproxy_using_subcommand chat" -l messages -d 'A JSON array of {role, content} messages for multi-turn use (`-` for stdin)' -r -F
complete -c llmproxy -n "__fish_llmproxy_using_subcommand chat" -l config -d 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]' -r -F
complete -c llmproxy -n "__fish_llmproxy_using_subcommand chat" -l no-stdin -d 'Ignore stdin even when it is not a terminal (cron, CI)'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand chat" -l json -d 'Print the normalized JSON reply instead of the text'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand chat" -s h -l help -d 'Print help'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand stream" -s m -l model -d 'Model name, as the provider spells it [default: an alias\'s model]' -r -f
complete -c llmproxy -n "__fish_llmproxy_using_subcommand stream" -s s -l system -d 'A system prompt' -r -f
complete -c llmproxy -n "__fish_llmproxy_using_subcommand stream" -l max-tokens -d 'Cap on generated tokens' -r
complete -c llmproxy -n "__fish_llmproxy_using_subcommand stream" -l temperature -d 'Sampling temperature (0 to 2; Anthropic accepts 0 to 1)' -r
complete -c llmproxy -n "__fish_llmproxy_using_subcommand stream" -l api-key -d 'API key [default: the provider\'s variable, e.g. OPENAI_API_KEY; see `llmproxy providers`]' -r -f
complete -c llmproxy -n "__fish_llmproxy_using_subcommand stream" -l retries -d 'Retries of a failed request (429, 5xx, refused connections) [default: UPSTREAM_MAX_RETRIES, else the provider\'s `retries`, else 2]' -r
complete -c llmproxy -n "__fish_llmproxy_using_subcommand stream" -l messages -d 'A JSON array of {role, content} messages for multi-turn use (`-` for stdin)' -r -F
complete -c llmproxy -n "__fish_llmproxy_using_subcommand stream" -l config -d 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]' -r -F
complete -c llmproxy -n "__fish_llmproxy_using_subcommand stream" -l no-stdin -d 'Ignore stdin even when it is not a terminal (cron, CI)'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand stream" -l raw -d 'Write the upstream SSE bytes unchanged instead of the text'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand stream" -s h -l help -d 'Print help'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand help; and not __fish_seen_subcommand_from serve providers completions chat stream help" -f -a "serve" -d 'Run the HTTP proxy server'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand help; and not __fish_seen_subcommand_from serve providers completions chat stream help" -f -a "providers" -d 'List the providers and model aliases (built in and from the config file)'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand help; and not __fish_seen_subcommand_from serve providers completions chat stream help" -f -a "completions" -d 'Print a shell completion script'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand help; and not __fish_seen_subcommand_from serve providers completions chat stream help" -f -a "chat" -d 'Send one prompt and print the whole reply'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand help; and not __fish_seen_subcommand_from serve providers completions chat stream help" -f -a "stream" -d 'Send one prompt and print the reply token by token as it arrives'
complete -c llmproxy -n "__fish_llmproxy_using_subcommand help; and not __fish_seen_subcommand_from serve providers completions chat stream help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
