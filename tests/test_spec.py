"""Every clause of the product specification (spec §2-§12, as the README states it to users) and
the tests that check it; a clause without a test, or a test named here that no longer exists,
fails this file. The crash-point table (test_crash.py) does the same for crash points.

Each test is named as ``file::function``; a clause lists the tests that would fail if the
promise broke, not every test that passes through it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SPEC: dict[str, list[str]] = {
    # §2 The accounts file
    "§2 found by --config, else $HELPDESK_FETCH_CONFIG, else a documented default": [
        "test_config::test_missing_file_says_how_to_start",
        "test_config::test_the_accounts_file_is_found_where_the_readme_says",
        "test_cli::test_version_and_help",
    ],
    "§2 every key of the shape, with its default": [
        "test_config::test_the_sample_file_is_valid_and_documents_every_key",
        "test_config::test_defaults",
    ],
    "§2 a file with no account is a configuration error; all disabled is not": [
        "test_config::test_a_file_without_accounts_stops_every_command_that_reads_mail",
        "test_config::test_a_file_whose_accounts_are_all_disabled_is_not_an_error",
        "test_config::test_dev_null_is_no_accounts_file",
        "test_check::test_no_accounts_after_fetch_ran_or_nothing_at_all_is_critical",
    ],
    "§2 maildir accounts read a local Maildir": [
        "test_ingest_maildir::test_maildir_mail_becomes_tickets",
        "test_ingest_maildir::test_relative_maildir_path_is_relative_to_the_accounts_file",
    ],
    "§2 unknown keys, wrong types, missing keys, unknown resources, duplicates name file, "
    "account and key": [
        "test_config::test_errors_name_the_file_account_and_key",
        "test_config::test_type_errors_never_show_the_value",
        "test_config::test_cli_exit_2_names_the_key",
    ],
    "§2 a file holding a secret readable by others, or not the user's, is refused (exit 2)": [
        "test_config::test_a_file_with_a_secret_readable_by_others_is_refused",
        "test_secrets::test_an_accounts_file_with_a_secret_must_be_private",
        "test_config::test_password_file_readable_by_others_is_refused",
        "test_config::test_password_file_of_another_user_is_refused",
    ],
    "§2 files others can write, or another user owns, are refused, secret or not": [
        "test_private::test_an_accounts_file_others_can_write_is_refused_without_a_secret",
        "test_private::test_an_accounts_file_of_another_user_is_refused_without_a_secret",
        "test_private::test_templates_others_can_write_are_refused",
        "test_private::test_a_token_store_others_can_write_is_refused",
        "test_private::test_a_password_file_others_can_write_fails_its_account",
    ],
    "§2 commands that write the file keep comments and layout, atomically, mode 0600": [
        "test_configedit::test_add_appends_a_block_and_keeps_everything_else",
        "test_configedit::test_an_invalid_result_is_never_written",
        "test_configedit::test_the_account_commands_keep_rules_blocks_as_written",
    ],
    "§2 the ingest switch travels with the machine and is shown by status": [
        "test_ingest_imap::test_ingest_disable_reads_nothing",
        "test_status::test_an_unreadable_ingest_switch_stops_fetch_loudly",
    ],
    # §3 Commands
    "§3 every command has --help with an example; --version": [
        "test_cli::test_every_command_has_help_with_an_example",
        "test_cli::test_version_and_help",
    ],
    "§3 accounts list/add/remove/enable/disable/test": [
        "test_cli::test_accounts_add_remove_enable_disable",
        "test_cli::test_accounts_list_never_shows_a_secret",
        "test_cli::test_accounts_test",
        "test_cli::test_accounts_add_has_an_option_for_every_key_but_the_password_itself",
        "test_terminal::test_accounts_add_dialog_at_a_terminal",
    ],
    "§3 fetch --dry-run changes nothing anywhere": [
        "test_ingest_imap::test_dry_run_changes_nothing",
        "test_kinds::test_dry_run_names_each_kind_and_changes_nothing",
        "test_ingest_imap::test_a_dry_run_leaves_the_database_byte_identical",
        "test_ingest_pop3::test_a_dry_run_leaves_the_database_byte_identical",
        "test_automail::test_a_dry_run_sends_no_queued_automail_and_changes_no_byte",
    ],
    "§3 TICKET is the number or the tag; --id the internal id": [
        "test_cli::test_tickets_by_number_or_tag",
        "test_cli::test_tickets_commands",
    ],
    "§3 the JSON shapes of tickets list/show, accounts list, status": [
        "test_cli::test_tickets_commands",
        "test_cli::test_tickets_json_addresses_times_and_attachments",
        "test_status::test_status_json_schema",
        "test_cli::test_status_json",
    ],
    "§3 tables and progress only at a terminal; fetch under cron prints nothing when all is "
    "well": [
        "test_terminal::test_fetch_under_cron_prints_nothing",
        "test_terminal::test_fetch_at_a_terminal_shows_progress_and_a_summary",
        "test_terminal::test_tables_read_well_at_80_columns",
    ],
    "§3 exit codes 0/1/2/75": [
        "test_ingest_imap::test_a_failing_account_does_not_stop_the_others",
        "test_cli::test_a_held_account_makes_the_run_exit_75",
        "test_config::test_cli_exit_2_names_the_key",
    ],
    "§3 a locked or unreachable database: one line, exit 1 (75 for deliver)": [
        "test_tickets::test_a_database_error_in_a_ticket_command_is_one_line",
        "test_tickets::test_a_database_locked_by_another_process_is_one_line",
        "test_deliver::test_locked_database_is_a_temporary_failure",
        "test_deliver::test_unreachable_database_is_a_temporary_failure",
        "test_postgres::test_a_postgresql_error_in_a_ticket_command_is_one_line",
        "test_postgres::test_a_connection_dropped_under_a_ticket_command_is_one_line",
        "test_deliver::test_read_only_database_is_a_temporary_failure",
        "test_db::test_a_database_another_user_owns_is_one_line_with_owner_mode_and_fix",
    ],
    "§3 errors list/show/retry/dismiss": [
        "test_retry::test_imap_error_folder_retry_after_raising_the_limit",
        "test_retry::test_errors_show_and_usage",
        "test_retry::test_dismiss_keeps_a_copy_and_clears_the_pop3_server",
    ],
    "§3 deliver: 0 stored, 75 temporary, 65 quarantined": [
        "test_deliver::test_piped_message_becomes_a_ticket_once",
        "test_deliver::test_unparseable_message_is_quarantined_with_65_and_retryable",
        "test_deliver::test_usage_and_configuration_errors_keep_the_message_queued",
    ],
    "§3 the time comes from the system clock": [
        "test_automail::test_reply_within_the_reactivation_window_reopens",
        "test_kinds::test_ignored_mail_is_pruned_after_ignored_days",
    ],
    # §4 Ingest
    "§4.1 store first, delete second; never neither": [
        "test_crash::test_crash_then_clean_run",
        "test_crash::test_random_sigkills_lose_and_double_nothing",
        "test_database_failures::test_commit_is_on_disk_before_the_server_deletes",
        "test_ingest_pop3::test_a_refused_dele_deletes_nothing_and_the_next_run_finishes",
    ],
    "§4.1 a source key or byte-identical message already stored is only deleted": [
        "test_ingest_imap::test_refetch_of_a_stored_message_adds_nothing",
        "test_ingest_pop3::test_refetch_after_lost_quit_adds_nothing",
        "test_ingest_pop3::test_a_uidl_given_again_to_a_new_message_is_not_taken_for_the_old",
        "test_ingest_imap::test_a_uidvalidity_reset_doubles_nothing_and_stores_new_mail",
    ],
    "§4.1 one mail through several accounts is one message": [
        "test_kinds::test_a_mail_to_two_accounts_is_one_ticket_in_one_run",
        "test_kinds::test_a_mail_to_two_accounts_is_one_ticket_over_two_runs",
        "test_kinds::test_a_crash_between_recording_a_copy_and_deleting_it_loses_and_doubles_"
        "nothing",
    ],
    "§4.2 each message atomic; one failure never undoes another; the raw kept": [
        "test_ingest_maildir::test_a_bug_met_by_one_message_sets_it_aside_and_spares_the_rest",
        "test_store::test_the_stored_copy_gives_back_the_exact_bytes",
        "test_workers::test_workers_killed_mid_run_lose_and_duplicate_nothing",
    ],
    "§4.2 groups: a savepoint each, committed at least every second, nothing deleted before "
    "its commit": [
        "test_group::test_a_group_is_seen_whole_at_its_commit_and_a_refused_message_undoes_no_"
        "other",
        "test_group::test_a_group_rolled_back_runs_none_of_its_actions",
        "test_group::test_a_group_is_due_by_age_count_or_size",
        "test_group::test_a_large_message_has_the_open_group_committed_first",
        "test_group::test_an_interrupt_during_a_commit_waits_for_its_actions",
        "test_group::test_fetch_sets_aside_a_refused_message_and_stores_the_rest",
        "test_group::test_a_stalled_mailbox_holds_no_group_open",
        "test_group::test_a_deadlock_with_another_worker_commits_the_group_and_stores_the_message",
        "test_crash::test_crash_then_clean_run",
        "test_database_failures::test_commit_is_on_disk_before_the_server_deletes",
    ],
    "§4.3 parsing: headers, charsets, HTML, attachments, nested messages; broken input "
    "degrades": [
        "test_parse::test_each_case_of_the_mail_set_gives_what_it_promises",
        "test_ingest_imap::test_mixed_mail_becomes_tickets_and_leaves_the_mailbox",
        "test_hostile_mail::test_mutated_mail_is_stored_or_set_aside",
    ],
    "§4.4 a message that cannot be ingested never blocks the rest (IMAP, POP3, Maildir)": [
        "test_ingest_imap::test_unparseable_message_goes_to_the_error_folder",
        "test_ingest_pop3::test_failed_message_stays_on_the_server_and_is_skipped",
        "test_ingest_maildir::test_failed_message_moves_to_the_error_maildir",
        "test_ingest_imap::test_an_error_folder_the_server_refuses_blocks_nothing",
        "test_ingest_pop3::test_a_notice_in_the_messages_place_is_never_taken_for_it",
        "test_ingest_pop3::test_a_message_of_one_line_longer_than_the_line_bound_blocks_nothing",
    ],
    "§4.4 the error folder lives in the personal namespace, with its separator": [
        "test_imapserver::test_full_name",
        "test_imapserver::test_a_server_without_namespace_takes_names_as_given",
        "test_ingest_imap::test_unparseable_message_goes_to_the_error_folder",
        "test_ingest_imap::test_an_error_folder_given_by_its_full_name_is_taken_as_it_is",
        "test_ingest_imap::test_an_account_folder_given_by_its_full_name_is_read",
        "test_ingest_imap::test_accounts_test_shows_the_namespace_and_the_error_folder",
    ],
    "§4.4 oversized messages are recognised before download": [
        "test_retry::test_imap_error_folder_retry_after_raising_the_limit",
    ],
    "§4.4 parse_seconds really stops parsing; every step is linear": [
        "test_hostile_mail::test_a_message_over_parse_seconds_is_set_aside_and_the_run_goes_on",
        "test_hostile_mail::test_the_adversarial_shapes_never_stall_the_mailbox",
        "test_parse::test_every_shape_is_parsed_in_linear_time",
        "test_budget::test_a_message_over_the_budget_is_stopped_and_the_next_ones_are_parsed",
    ],
    "§4.5 threading by a valid tag, then In-Reply-To/References; forged tags ignored": [
        "test_ingest_imap::test_reply_threads_by_subject_tag",
        "test_ingest_imap::test_forged_tag_opens_a_new_ticket",
        "test_threads::test_forged_or_partial_tags_are_ignored",
        "test_threads::test_reading_ignores_case_space_and_brackets",
        "test_threads::test_a_reply_to_our_receipt_alone_threads_by_its_message_id",
    ],
    "§4.5 a database that lost its tag secret is refused": [
        "test_tickets::test_a_database_that_lost_its_tag_secret_is_refused",
        "test_tickets::test_an_empty_tag_secret_is_refused_too",
    ],
    "§4.6 one failing account is skipped; network operations time out": [
        "test_ingest_imap::test_a_failing_account_does_not_stop_the_others",
        "test_network_faults::test_stalled_server_times_out",
        "test_network_faults::test_trickling_server_is_cut_off_by_the_run_budget",
        "test_status::test_accounts_the_run_budget_left_out_are_recorded_as_skipped",
    ],
    "§4.7 overlapping runs never process one account at once": [
        "test_concurrency::test_two_runs_started_together_share_the_work",
        "test_cli::test_a_held_account_is_skipped_while_others_run",
        "test_ahead::test_a_busy_account_opened_ahead_is_logged_out_unread",
    ],
    # §5 Ticket rules
    "§5.1 a new message opens a ticket, new, escalation armed, auto-mails": [
        "test_automail::test_new_ticket_mails_requester_and_resource",
        "test_rules::test_no_ticket_opens_one",
    ],
    "§5.2 a reply: appended, confirmed_unread, escalation re-armed, customer_reply": [
        "test_automail::test_customer_reply_rearms_escalation_and_tells_the_staff",
        "test_rules::test_reply_to_an_open_ticket",
    ],
    "§5.3 a member's reply changes nothing with the switch on; nobody is told of their own "
    "message": [
        "test_automail::test_member_reply",
        "test_rules::test_member_reply_with_and_without_the_switch",
        "test_automail::test_member_rule_trusts_only_what_our_server_vouches_for",
        "test_automail::test_a_member_who_opens_a_ticket_is_sent_nothing_about_it",
    ],
    "§5.4 a closed ticket reopens within the window; after it, rejected and ticket_closed": [
        "test_automail::test_reply_within_the_reactivation_window_reopens",
        "test_automail::test_reply_after_the_window_is_rejected_and_answered",
        "test_rules::test_closed_ticket_reactivation_window",
    ],
    # §6 Auto-mails
    "§6 recipients, tag, In-Reply-To/References, Auto-Submitted, our marker, templates": [
        "test_automail::test_new_ticket_mails_requester_and_resource",
        "test_automail::test_german_texts_and_the_administrators_own_templates",
        "test_automail::test_subjects_cannot_inject_headers",
    ],
    "§6 without [smtp] no auto-mail; queued in the transaction, sent after commit, retried": [
        "test_automail::test_smtp_down_queues_and_a_later_run_delivers",
        "test_automail_after_commit::test_deliver_stores_even_when_smtp_is_down",
        "test_outbox::test_a_temporary_refusal_is_retried_and_a_permanent_one_is_not",
    ],
    "§6 never answered: auto-submitted, bulk, lists, daemons, our own; a bounded number an "
    "hour": [
        "test_automail::test_robots_and_lists_are_ingested_but_never_answered",
        "test_automail::test_daemon_and_own_senders_are_never_answered",
        "test_automail::test_at_most_the_cap_of_automails_per_sender_and_hour",
        "test_classify::test_headers_that_forbid_an_answer",
        "test_automail::test_generated_junk_and_list_mail_is_ingested_but_never_answered",
        "test_automail::test_auto_submitted_no_is_answered_like_any_request",
    ],
    # §7 Authentication and secrets
    "§7 password sources: env, file, command, inline": [
        "test_config::test_password_sources",
        "test_config::test_password_source_failures",
    ],
    "§7 OAuth2: token command, refresh flow, client credentials, XOAUTH2 on IMAP/POP3/SMTP": [
        "test_oauth2::test_fetch_with_a_token_from_the_command",
        "test_oauth2::test_refresh_flow_saves_the_rotated_refresh_token",
        "test_oauth2::test_client_credentials_with_a_secret",
        "test_oauth2_smtp::test_automails_are_sent_with_xoauth2",
        "test_oauth2_authorize::test_device_code_sign_in_then_fetch",
    ],
    "§7 certificates verified for every protocol; ca_file": [
        "test_tls::test_a_self_signed_certificate_needs_ca_file",
        "test_outbox::test_smtp_over_implicit_tls",
        "test_tls::test_the_host_name_is_verified",
        "test_tls::test_the_token_endpoint_certificate_is_verified",
    ],
    "§7 no secret in any output": [
        "test_secrets::test_no_secret_in_any_output",
        "test_secrets::test_the_protocol_traces_hide_the_login",
    ],
    # §8 Beyond one machine
    "§8 PostgreSQL: the same commands; several machines never process one account at once": [
        "test_postgres::test_a_killed_worker_releases_its_account",
        "test_workers::test_workers_killed_mid_run_lose_and_duplicate_nothing",
        "test_postgres::test_the_write_path_locks_the_ticket_row_until_commit",
    ],
    # §9 Mail that is not a request
    "§9 one classifier: kinds on every message and the no-reply decision": [
        "test_classify::test_each_sample",
        "test_kinds::test_dry_run_names_each_kind_and_changes_nothing",
    ],
    "§9.1 an auto-reply changes nothing; unthreaded, it opens nothing": [
        "test_kinds::test_an_out_of_office_reply_to_our_receipt_changes_nothing",
        "test_kinds::test_an_auto_reply_to_no_ticket_opens_none_and_is_kept_as_ignored",
    ],
    "§9.2 bounces: appended, bouncing addresses held; delays mark nothing; backscatter "
    "ignored": [
        "test_kinds::test_a_bounce_of_our_receipt_is_appended_and_holds_the_address",
        "test_kinds::test_each_kind_of_bounce_finds_its_ticket",
        "test_kinds::test_a_delay_notice_is_appended_and_marks_nothing",
        "test_kinds::test_backscatter_opens_no_ticket_and_marks_nothing",
    ],
    "§9.3 duplicate copies": [
        "test_kinds::test_a_mail_to_two_accounts_is_one_ticket_in_one_run",
        "test_kinds::test_a_different_mail_with_the_same_message_id_is_not_a_copy",
    ],
    "§9.4 ignored mail: kept, listed, shown, restored, pruned, counted": [
        "test_kinds::test_ignored_restore_makes_a_request_once",
        "test_kinds::test_ignored_mail_is_pruned_after_ignored_days",
        "test_kinds::test_unknown_ignored_ids_are_usage_errors",
        "test_kinds::test_ignored_mail_as_people_and_scripts_read_it",
    ],
    # §10 Rules
    "§10 conditions, actions, first match wins; validation names the rule and key": [
        "test_routing::test_routing_by_each_condition",
        "test_routing::test_every_condition_of_a_rule_must_hold_and_the_first_rule_wins",
        "test_routing::test_sub_addresses",
        "test_routing::test_ignore_keeps_the_mail_out_of_the_tickets",
        "test_routing::test_automail_off_for_a_sender_and_on_for_a_quiet_account",
        "test_routing::test_every_validation_error_names_the_rule_and_the_key",
    ],
    "§10.1 a rule's resource for new tickets; the deciding rule shown; rules test": [
        "test_routing::test_rules_test_on_files_and_standard_input",
        "test_routing::test_a_rule_changed_between_runs",
        "test_routing::test_a_dry_run_names_the_rule_that_decides_each_message_and_changes_"
        "nothing",
        "test_routing::test_status_and_accounts_list_count_the_messages_each_rule_decided",
        "test_cli::test_a_dry_run_names_each_message_then_its_verdict",
    ],
    "§10.2 monitoring correlation and resolve": [
        "test_routing::test_alerts_correlate_across_runs_and_a_recovery_closes_their_ticket",
        "test_routing::test_two_workers_with_alerts_of_one_key_open_one_ticket",
        "test_routing::test_the_readme_rules_for_each_monitoring_system",
    ],
    # §11 Health
    "§11.1 check: a monitoring plugin, states, perfdata, --json": [
        "test_check::test_ok_with_perfdata",
        "test_check::test_critical_when_an_account_had_no_success_for_max_age",
        "test_check::test_critical_after_three_failed_runs_naming_each_account",
        "test_check::test_warning_for_failed_messages_and_a_disabled_ingest",
        "test_check::test_unknown_when_the_database_cannot_be_read",
        "test_check::test_a_streak_counts_finished_runs_only",
        "test_check::test_a_run_still_going_hides_no_streak",
        "test_check::test_warning_for_hook_events_given_up_in_the_last_day",
        "test_check::test_no_accounts_deliver_only_is_judged_by_what_comes_in",
        "test_check::test_no_accounts_after_fetch_ran_or_nothing_at_all_is_critical",
    ],
    "§11.2 quiet repeats; [alerts] mails": [
        "test_alerts::test_failure_is_news_when_it_starts_and_when_it_ends",
        "test_alerts::test_an_alert_mail_that_cannot_be_sent_is_reported",
        "test_alerts::test_syslog_and_the_log_file_keep_every_repeat_that_stderr_leaves_out",
        "test_alerts::test_a_changed_cause_is_news_once",
        "test_alerts::test_an_accounts_configuration_error_is_news_once",
        "test_alerts::test_server_timings_do_not_make_a_failure_news",
    ],
    "§11.3 canaries: sent, received, travel time, overdue is critical": [
        "test_canary::test_a_canary_travels_and_is_recorded_without_a_ticket",
        "test_canary::test_a_canary_that_never_arrives_makes_check_critical",
        "test_canary::test_a_canary_at_the_wrong_account_or_forged_is_ordinary_mail",
        "test_contrib::test_the_probe_service_is_hardened_alike_and_runs_hourly",
    ],
    # §12 Hooks
    "§12 events queued in the ticket's transaction, run after commit, retried in order": [
        "test_hooks::test_each_ticket_change_runs_the_hook_once_with_its_event",
        "test_hooks::test_a_failing_hook_is_retried_later_in_order_per_ticket",
        "test_hooks::test_a_crash_between_commit_and_hook_delays_the_event_but_never_loses_it",
        "test_hooks::test_a_hanging_hook_is_killed_with_everything_it_started",
        "test_hooks::test_no_shell_and_no_secret_of_ours_in_the_hooks_environment",
    ],
    "§12 the command is an argv whose program is checked when the accounts file is read": [
        "test_config::test_a_hook_command_that_cannot_run_is_refused_when_the_file_is_read",
        "test_hooks::test_a_hook_program_that_is_missing_stops_every_command_at_once",
    ],
}

SECTIONS = ("§2", "§3", "§4.1", "§4.2", "§4.3", "§4.4", "§4.5", "§4.6", "§4.7", "§5.1", "§5.2",
            "§5.3", "§5.4", "§6", "§7", "§8", "§9", "§9.1", "§9.2", "§9.3", "§9.4", "§10",
            "§10.1", "§10.2", "§11.1", "§11.2", "§11.3", "§12")


def _tests_in(module: str) -> set[str]:
    tree = ast.parse((TESTS / f"{module}.py").read_text(encoding="utf-8"))
    return {node.name for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")}


def test_every_section_of_the_spec_has_clauses():
    named = {clause.split(" ", 1)[0] for clause in SPEC}
    assert set(SECTIONS) <= named, sorted(set(SECTIONS) - named)


@pytest.mark.parametrize("clause", list(SPEC))
def test_every_clause_names_tests_that_exist(clause):
    assert SPEC[clause], f"{clause}: no test checks it"
    for name in SPEC[clause]:
        module, _, function = name.partition("::")
        assert function in _tests_in(module), f"{clause}: {name} does not exist"
