// The toggle screen: draws PresenceShell's ToggleState, sends taps to its view model.
// Behind canImport(SwiftUI) && canImport(UIKit): parsed on Linux, type-checked by Xcode.

#if canImport(UIKit) && canImport(SwiftUI)
import Presence
import PresenceShell
import SwiftUI

struct ToggleView: View {
    @ObservedObject var model: AppModel
    @State private var account = ""
    @State private var email = ""
    @State private var password = ""
    @State private var note = ""
    /// The status whose end is being picked ("Busy until…"), and the time picked.
    @State private var askingUntil: AgentStatus?
    @State private var until = Date()

    var body: some View {
        Form {
            if let s = model.state, s.signedIn {
                Section {
                    Text(s.headline).font(.title) + Text(s.pending ? " (sending…)" : "")
                    if let c = s.custom { Text(c) }
                    if let n = s.note { Text(n).italic() }
                    if let c = s.cause { Text(c).foregroundColor(.secondary) }
                }
                Section {
                    TextField("Note for your team (sent with your next choice)", text: $note)
                        .onChange(of: note) { model.shell?.toggle.editNote($0) }
                    Text(s.noteLeft).font(.footnote).foregroundColor(s.noteTooLong ? .red : .secondary)
                    Button("Save note") { send { await $0.saveNote() } }
                }
                Section {
                    ForEach(Array(s.options.enumerated()), id: \.offset) { _, option in
                        Button(option.label) { pick(option) }
                    }
                }
                Section {
                    Text(s.connection)
                    if let c = s.chatbox { Text("\(c.text): \(c.reason)"); c.message.map { Text($0) } }
                    if s.waiting > 0 { Text("\(s.waiting) change(s) waiting") }
                    if let e = s.error { Text(e).foregroundColor(.red) }
                }
                ForEach(s.wedged, id: \.opId) { w in
                    Section {
                        Text(w.text)
                        Button("Retry") { Task { await model.shell?.toggle.retry(w.opId) } }
                        Button("Discard", role: .destructive) { Task { await model.shell?.toggle.discard(w.opId) } }
                    }
                }
                Button("Sign out") { Task { await model.shell?.toggle.signOut() } }
            } else {
                TextField("Account", text: $account)
                TextField("Email", text: $email)
                SecureField("Password", text: $password)
                Button("Sign in") { Task { await model.shell?.toggle.signIn(account: account, email: email, password: password) } }
                if let e = model.state?.signedOutBecause ?? model.state?.error { Text(e).foregroundColor(.red) }
            }
        }
        .sheet(isPresented: Binding(get: { askingUntil != nil }, set: { if !$0 { askingUntil = nil } })) {
            NavigationView {
                DatePicker("Until", selection: $until, displayedComponents: .hourAndMinute)
                    .datePickerStyle(.wheel)
                    .labelsHidden()
                    .toolbar {
                        ToolbarItem(placement: .confirmationAction) {
                            Button("Set") {
                                if let status = askingUntil {
                                    let at = TimeOfDay(until, in: .current)
                                    send { await $0.chooseUntil(status, at) }
                                }
                                askingUntil = nil
                            }
                        }
                        ToolbarItem(placement: .cancellationAction) { Button("Cancel") { askingUntil = nil } }
                    }
            }
        }
    }

    /// A menu row: sends its choice, or first asks for the time of day.
    private func pick(_ option: Option) {
        switch option {
        case .send(_, let choice): send { await $0.choose(choice) }
        case .askTime(_, let status):
            until = Date().addingTimeInterval(3600)
            askingUntil = status
        }
    }

    /// Runs `action` with the note field's text as the view model's note; once it went out (the
    /// view model cleared its copy), clears the field too.
    private func send(_ action: @escaping (ToggleViewModel) async -> Bool) {
        guard let toggle = model.shell?.toggle else { return }
        toggle.editNote(note)
        Task { @MainActor in if await action(toggle) { note = "" } }
    }
}
#endif
