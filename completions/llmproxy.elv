
use builtin;
use str;

set edit:completion:arg-completer[llmproxy] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'llmproxy'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'llmproxy'= {
            cand --config 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand serve 'Run the HTTP proxy server'
            cand providers 'List the providers and model aliases (built in and from the config file)'
            cand completions 'Print a shell completion script'
            cand chat 'Send one prompt and print the whole reply'
            cand stream 'Send one prompt and print the reply token by token as it arrives'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'llmproxy;serve'= {
            cand --host 'Address to listen on'
            cand --port 'Port to listen on (0 picks a free one)'
            cand --config 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]'
            cand --check-config 'Validate the configuration (variables and config file), then exit 0 or 2 without listening'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'llmproxy;providers'= {
            cand --config 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]'
            cand --json 'Print JSON instead of a table'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'llmproxy;completions'= {
            cand --config 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'llmproxy;chat'= {
            cand -m 'Model name, as the provider spells it [default: an alias''s model]'
            cand --model 'Model name, as the provider spells it [default: an alias''s model]'
            cand -s 'A system prompt'
            cand --system 'A system prompt'
            cand --max-tokens 'Cap on generated tokens'
            cand --temperature 'Sampling temperature (0 to 2; Anthropic accepts 0 to 1)'
            cand --api-key 'API key [default: the provider''s variable, e.g. OPENAI_API_KEY; see `llmproxy providers`]'
            cand --retries 'Retries of a failed request (429, 5xx, refused connections) [default: UPSTREAM_MAX_RETRIES, else the provider''s `retries`, else 2]'
            cand --messages 'A JSON array of {role, content} messages for multi-turn use (`-` for stdin)'
            cand --config 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]'
            cand --no-stdin 'Ignore stdin even when it is not a terminal (cron, CI)'
            cand --json 'Print the normalized JSON reply instead of the text'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'llmproxy;stream'= {
            cand -m 'Model name, as the provider spells it [default: an alias''s model]'
            cand --model 'Model name, as the provider spells it [default: an alias''s model]'
            cand -s 'A system prompt'
            cand --system 'A system prompt'
            cand --max-tokens 'Cap on generated tokens'
            cand --temperature 'Sampling temperature (0 to 2; Anthropic accepts 0 to 1)'
            cand --api-key 'API key [default: the provider''s variable, e.g. OPENAI_API_KEY; see `llmproxy providers`]'
            cand --retries 'Retries of a failed request (429, 5xx, refused connections) [default: UPSTREAM_MAX_RETRIES, else the provider''s `retries`, else 2]'
            cand --messages 'A JSON array of {role, content} messages for multi-turn use (`-` for stdin)'
            cand --config 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]'
            cand --no-stdin 'Ignore stdin even when it is not a terminal (cron, CI)'
            cand --raw 'Write the upstream SSE bytes unchanged instead of the text'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'llmproxy;help'= {
            cand serve 'Run the HTTP proxy server'
            cand providers 'List the providers and model aliases (built in and from the config file)'
            cand completions 'Print a shell completion script'
            cand chat 'Send one prompt and print the whole reply'
            cand stream 'Send one prompt and print the reply token by token as it arrives'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'llmproxy;help;serve'= {
        }
        &'llmproxy;help;providers'= {
        }
        &'llmproxy;help;completions'= {
        }
        &'llmproxy;help;chat'= {
        }
        &'llmproxy;help;stream'= {
        }
        &'llmproxy;help;help'= {
        }
    ]
    $completions[$command]
}
