
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'llmproxy' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'llmproxy'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'llmproxy' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the HTTP proxy server')
            [CompletionResult]::new('providers', 'providers', [CompletionResultType]::ParameterValue, 'List the providers and model aliases (built in and from the config file)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('chat', 'chat', [CompletionResultType]::ParameterValue, 'Send one prompt and print the whole reply')
            [CompletionResult]::new('stream', 'stream', [CompletionResultType]::ParameterValue, 'Send one prompt and print the reply token by token as it arrives')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'llmproxy;serve' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Address to listen on')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port to listen on (0 picks a free one)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]')
            [CompletionResult]::new('--check-config', '--check-config', [CompletionResultType]::ParameterName, 'Validate the configuration (variables and config file), then exit 0 or 2 without listening')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'llmproxy;providers' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'llmproxy;completions' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'llmproxy;chat' {
            [CompletionResult]::new('-m', '-m', [CompletionResultType]::ParameterName, 'Model name, as the provider spells it [default: an alias''s model]')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model name, as the provider spells it [default: an alias''s model]')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'A system prompt')
            [CompletionResult]::new('--system', '--system', [CompletionResultType]::ParameterName, 'A system prompt')
            [CompletionResult]::new('--max-tokens', '--max-tokens', [CompletionResultType]::ParameterName, 'Cap on generated tokens')
            [CompletionResult]::new('--temperature', '--temperature', [CompletionResultType]::ParameterName, 'Sampling temperature (0 to 2; Anthropic accepts 0 to 1)')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the provider''s variable, e.g. OPENAI_API_KEY; see `llmproxy providers`]')
            [CompletionResult]::new('--retries', '--retries', [CompletionResultType]::ParameterName, 'Retries of a failed request (429, 5xx, refused connections) [default: UPSTREAM_MAX_RETRIES, else the provider''s `retries`, else 2]')
            [CompletionResult]::new('--messages', '--messages', [CompletionResultType]::ParameterName, 'A JSON array of {role, content} messages for multi-turn use (`-` for stdin)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]')
            [CompletionResult]::new('--no-stdin', '--no-stdin', [CompletionResultType]::ParameterName, 'Ignore stdin even when it is not a terminal (cron, CI)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the normalized JSON reply instead of the text')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'llmproxy;stream' {
            [CompletionResult]::new('-m', '-m', [CompletionResultType]::ParameterName, 'Model name, as the provider spells it [default: an alias''s model]')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model name, as the provider spells it [default: an alias''s model]')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'A system prompt')
            [CompletionResult]::new('--system', '--system', [CompletionResultType]::ParameterName, 'A system prompt')
            [CompletionResult]::new('--max-tokens', '--max-tokens', [CompletionResultType]::ParameterName, 'Cap on generated tokens')
            [CompletionResult]::new('--temperature', '--temperature', [CompletionResultType]::ParameterName, 'Sampling temperature (0 to 2; Anthropic accepts 0 to 1)')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the provider''s variable, e.g. OPENAI_API_KEY; see `llmproxy providers`]')
            [CompletionResult]::new('--retries', '--retries', [CompletionResultType]::ParameterName, 'Retries of a failed request (429, 5xx, refused connections) [default: UPSTREAM_MAX_RETRIES, else the provider''s `retries`, else 2]')
            [CompletionResult]::new('--messages', '--messages', [CompletionResultType]::ParameterName, 'A JSON array of {role, content} messages for multi-turn use (`-` for stdin)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'The TOML config file [default: LLMPROXY_CONFIG, else $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml when it exists]')
            [CompletionResult]::new('--no-stdin', '--no-stdin', [CompletionResultType]::ParameterName, 'Ignore stdin even when it is not a terminal (cron, CI)')
            [CompletionResult]::new('--raw', '--raw', [CompletionResultType]::ParameterName, 'Write the upstream SSE bytes unchanged instead of the text')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'llmproxy;help' {
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the HTTP proxy server')
            [CompletionResult]::new('providers', 'providers', [CompletionResultType]::ParameterValue, 'List the providers and model aliases (built in and from the config file)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('chat', 'chat', [CompletionResultType]::ParameterValue, 'Send one prompt and print the whole reply')
            [CompletionResult]::new('stream', 'stream', [CompletionResultType]::ParameterValue, 'Send one prompt and print the reply token by token as it arrives')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'llmproxy;help;serve' {
            break
        }
        'llmproxy;help;providers' {
            break
        }
        'llmproxy;help;completions' {
            break
        }
        'llmproxy;help;chat' {
            break
        }
        'llmproxy;help;stream' {
            break
        }
        'llmproxy;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
