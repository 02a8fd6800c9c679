"""One post on the room board: its header, text, likes, comments and in-place editing.

Kept apart from the board view so what a card shows can be read without the feed's ordering,
scrolling and paging around it.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QBoxLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui.viewmodels.board import UNVERIFIED, CommentItem, PostItem

if TYPE_CHECKING:
    from ui.widgets.board_view import BoardView

VERIFIED = "✓ verified"


class Editor(QPlainTextEdit):
    """Multi-line text that Ctrl+Enter submits and (when editing) Escape cancels."""

    submitted = Signal()
    cancelled = Signal()

    def __init__(
        self, placeholder: str, accessible: str, *, lines: int = 3, cancellable: bool = False
    ) -> None:
        super().__init__()
        self._cancellable = cancellable
        self.setPlaceholderText(placeholder)
        self.setAccessibleName(accessible)
        self.setTabChangesFocus(True)
        margins = 2 * (self.frameWidth() + int(self.document().documentMargin()))
        self.setMaximumHeight(self.fontMetrics().lineSpacing() * lines + margins)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.submitted.emit()
        elif event.key() == Qt.Key.Key_Escape and self._cancellable:
            self.cancelled.emit()
        else:
            super().keyPressEvent(event)


class _EditRow(QWidget):
    """An editor with its buttons: Save and Cancel to edit an item, Reply to comment."""

    submitted = Signal(str)
    cancelled = Signal()

    def __init__(self, placeholder: str, action: str, what: str, *, cancel: bool) -> None:
        super().__init__()
        self.editor = Editor(placeholder, f"{what.capitalize()} text", cancellable=cancel)
        self.editor.submitted.connect(self._submit)
        self.editor.cancelled.connect(self.cancelled)
        self.action = QPushButton(action)
        self.action.setAccessibleName(f"{action} {what}")
        self.action.clicked.connect(self._submit)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.action, 0, Qt.AlignmentFlag.AlignBottom)
        if cancel:
            button = QPushButton("Cancel")
            button.setAccessibleName(f"Cancel editing {what}")
            button.clicked.connect(self.cancelled)
            layout.addWidget(button, 0, Qt.AlignmentFlag.AlignBottom)

    def _submit(self) -> None:
        self.submitted.emit(self.editor.toPlainText())


def _focus_chain(row: _EditRow | None) -> list[QWidget]:
    return [row.editor, row.action] if row is not None else []


def _button(text: str, accessible: str, tooltip: str = "") -> QToolButton:
    """A light action button sized to its text (Like, Comment, Edit, Delete)."""
    button = QToolButton()
    button.setText(text)
    button.setAccessibleName(accessible)
    button.setToolTip(tooltip or accessible)
    button.setAutoRaise(True)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    return button


def quiet(label: QLabel) -> QLabel:
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


def plain(label: QLabel) -> QLabel:
    """Show text as written: names and bodies come from peers, and must never be read as HTML."""
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def _plain_tip(text: str) -> str:
    """A tooltip that shows ``text`` literally (Qt renders a tooltip that looks like HTML)."""
    return f"<p>{html.escape(text, quote=False)}</p>"


def _set(label: QLabel, text: str) -> None:
    if label.text() != text:
        label.setText(text)


W = TypeVar("W", bound=QWidget)
I = TypeVar("I")  # noqa: E741


def widgets_in(layout: QBoxLayout, kind: type[W]) -> list[W]:
    """The widgets of ``kind`` in ``layout``, in their visual order."""
    found = (layout.itemAt(index) for index in range(layout.count()))
    return [w for item in found if item is not None and isinstance(w := item.widget(), kind)]


def reconcile(
    layout: QBoxLayout,
    widgets: dict[str, W],
    items: Sequence[I],
    *,
    key: Callable[[I], str],
    make: Callable[[I], W],
    show: Callable[[W, I], object],
    budget: int | None = None,
) -> tuple[bool, bool]:
    """Make ``layout`` hold one widget per item, in order, reusing widgets by key, building at
    most ``budget`` new ones. Returns (whether widgets were added, removed or moved, whether
    every item now has its widget)."""
    wanted = {key(item) for item in items}
    moved = False
    for gone in [k for k in widgets if k not in wanted]:
        widget = widgets.pop(gone)
        layout.removeWidget(widget)
        widget.deleteLater()
        moved = True
    built = 0
    for index, item in enumerate(items):
        k = key(item)
        if k not in widgets:
            if budget is not None and built >= budget:
                return moved, False
            widgets[k] = make(item)
            built += 1
        widget = widgets[k]
        if layout.indexOf(widget) != index:
            layout.removeWidget(widget)
            layout.insertWidget(index, widget)
            moved = True
        show(widget, item)
    return moved, True


def _confirm_delete(parent: QWidget, what: str, delete: Callable[[], bool]) -> None:
    """Ask before deleting (window-modal, without a nested event loop)."""
    box = QMessageBox(
        QMessageBox.Icon.Question,
        f"Delete {what}",
        f"Delete this {what}? Everyone in the room will stop seeing it.",
        parent=parent,
    )
    confirm = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)

    def done() -> None:
        if box.clickedButton() is confirm:
            delete()
        box.deleteLater()

    box.finished.connect(done)
    box.open()


class _ItemWidget(QFrame):
    """What posts and comments share: author, verified badge or warning, time, the text, and
    Edit and Delete on one's own, editing in place. Editors are built only when first used,
    so hundreds of cards stay cheap."""

    def __init__(
        self,
        view: BoardView,
        what: str,
        *,
        save: Callable[[str], bool],
        remove: Callable[[], bool],
    ) -> None:
        super().__init__()
        self.view = view
        self.what = what
        self._save_text = save
        self.author = plain(QLabel())
        font = self.author.font()
        font.setBold(True)
        self.author.setFont(font)
        self.badge = plain(QLabel())
        self.time = plain(quiet(QLabel()))
        self.edit = _button("Edit", f"Edit {what}", f"Edit your {what}")
        self.edit.clicked.connect(self.begin_edit)
        self.delete = _button("Delete", f"Delete {what}", f"Delete your {what}")
        self.delete.clicked.connect(lambda: _confirm_delete(view, what, remove))
        header = QHBoxLayout()
        for widget in (self.author, self.badge, self.time):
            header.addWidget(widget)
        header.addStretch(1)
        header.addWidget(self.edit)
        header.addWidget(self.delete)
        self.body = plain(QLabel())
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.body.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.editor: _EditRow | None = None
        self.item: PostItem | CommentItem | None = None
        self.box = QVBoxLayout(self)
        self.box.addLayout(header)
        self.box.addWidget(self.body)

    def show_item(self, item: PostItem | CommentItem) -> bool:
        """Show ``item``; False (and nothing touched) when it is already what is shown."""
        if item == self.item:
            return False
        self.item = item
        _set(self.author, item.author_name)
        _set(self.badge, VERIFIED if item.verified else UNVERIFIED)
        self.badge.setForegroundRole(
            QPalette.ColorRole.PlaceholderText if item.verified else QPalette.ColorRole.WindowText
        )
        self.badge.setToolTip(
            _plain_tip(f"Signed by {item.author_name}.")
            if item.verified
            else f"This {self.what}'s signature does not match its author: "
            "someone else may have written it."
        )
        _set(self.time, item.time_text)
        self.edit.setVisible(item.mine)
        self.delete.setVisible(item.mine)
        _set(self.body, item.body)
        return True

    def focus_chain(self) -> list[QWidget]:
        return [self.body, *_focus_chain(self.editor), self.edit, self.delete]

    def begin_edit(self) -> None:
        if self.editor is None:
            self.editor = _EditRow(f"Edit your {self.what}", "Save", self.what, cancel=True)
            self.editor.submitted.connect(self._save)
            self.editor.cancelled.connect(self.end_edit)
            self.box.insertWidget(self.box.indexOf(self.body) + 1, self.editor)
        self.editor.editor.setPlainText(self.body.text())
        self.body.hide()
        self.editor.show()
        self.editor.editor.setFocus()

    def end_edit(self) -> None:
        if self.editor is not None:
            self.editor.hide()
        self.body.show()

    def _save(self, text: str) -> None:
        if self._save_text(text):
            _set(self.body, text.strip())
            self.end_edit()
            self.view.message.hide()


class _CommentRow(_ItemWidget):
    def __init__(self, view: BoardView, item: CommentItem) -> None:
        comment_id = item.comment_id
        super().__init__(
            view,
            "comment",
            save=lambda text: view.vm.edit_comment(comment_id, text),
            remove=lambda: view.vm.delete_comment(comment_id),
        )
        self.box.setContentsMargins(16, 4, 0, 4)


class PostCard(_ItemWidget):
    """One post: header, text, Like and Comment, its comments, and a reply box on demand."""

    def __init__(self, view: BoardView, item: PostItem) -> None:
        post_id = item.post_id
        super().__init__(
            view,
            "post",
            save=lambda text: view.vm.edit_post(post_id, text),
            remove=lambda: view.vm.delete_post(post_id),
        )
        self.post_id = post_id
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setBackgroundRole(QPalette.ColorRole.Base)
        self.setAutoFillBackground(True)
        self.like = _button("", "Like")
        self.like.clicked.connect(lambda: view.vm.toggle_like(post_id))
        self.comment = _button("Comment", "Comment", "Write a comment on this post")
        self.comment.clicked.connect(self._toggle_reply)
        actions = QHBoxLayout()
        actions.addWidget(self.like)
        actions.addWidget(self.comment)
        actions.addStretch(1)
        self.box.addLayout(actions)
        self.comments: dict[str, _CommentRow] = {}
        self._comment_list = QVBoxLayout()
        self._comment_list.setSpacing(0)
        self.box.addLayout(self._comment_list)
        self.reply_row: _EditRow | None = None
        self.show_post(item)

    def show_post(self, item: PostItem) -> None:
        if not self.show_item(item):
            return
        liked = "Unlike" if item.liked_by_me else "Like"
        whose = "your post" if item.mine else f"{item.author_name}'s post"
        self.like.setText(f"{'♥' if item.liked_by_me else '♡'} {item.likes}")
        self.like.setAccessibleName(f"{liked} {whose}")
        self.like.setToolTip(
            _plain_tip(f"{liked} {whose} ({item.likes} {'like' if item.likes == 1 else 'likes'})")
        )
        reconcile(
            self._comment_list,
            self.comments,
            item.comments,
            key=lambda c: c.comment_id,
            make=lambda c: _CommentRow(self.view, c),
            show=_CommentRow.show_item,
        )

    def focus_chain(self) -> list[QWidget]:
        chain = [*super().focus_chain(), self.like, self.comment]
        for row in widgets_in(self._comment_list, _CommentRow):
            chain += row.focus_chain()
        return chain + _focus_chain(self.reply_row)

    def _toggle_reply(self) -> None:
        if self.reply_row is None:
            self.reply_row = _EditRow(
                "Write a comment (Ctrl+Enter to send)", "Reply", "comment", cancel=False
            )
            self.reply_row.setContentsMargins(16, 0, 0, 0)
            self.reply_row.submitted.connect(self._send_reply)
            self.reply_row.hide()
            self.box.addWidget(self.reply_row)
            self.view.chain_focus()
        self.reply_row.setVisible(self.reply_row.isHidden())
        if self.reply_row.isVisible():
            self.reply_row.editor.setFocus()

    def _send_reply(self, text: str) -> None:
        if self.reply_row is not None and self.view.vm.comment(self.post_id, text):
            self.reply_row.editor.clear()
            self.reply_row.hide()
            self.view.message.hide()
